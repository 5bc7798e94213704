"""CSV and TSV (plain or gzip'd): the header read, records planned by the record rule, columns
typed from a sample. Chunks go to COPY as the file's bytes; the loader parses what is refused."""

from __future__ import annotations

from granula_pipeline.lib.errors import BadInputError
from granula_pipeline.lib.formats.csv.header import read_header
from granula_pipeline.lib.formats.csv.parsing import python_codec
from granula_pipeline.lib.formats.csv.records import whole_records
from granula_pipeline.lib.formats.encoding import detect_encoding
from granula_pipeline.lib.formats.sampling import plan_text, sample
from granula_pipeline.lib.formats.types import infer_columns
from granula_pipeline.lib.model import Survey, SurveyRequest


class CsvFormat:
    def survey(self, request: SurveyRequest) -> Survey:
        path, source = request.path, request.source
        encoding = detect_encoding(path, source.compression)
        codec = python_codec(encoding)
        header = read_header(
            path, codec, delimiter=source.delimiter, compression=source.compression
        )
        chunks, plan = plan_text(
            request,
            data_offset=header.data_offset,
            first_line=header.first_data_line,
            quoting=True,
            empty=BadInputError("the file has a header but no data rows", line=2),
        )
        rows = sample(path, chunks, source.compression, whole_records)
        if encoding != "UTF8":
            rows = rows.decode(codec, errors="replace").encode()
        columns = infer_columns(rows, header.columns, header.source_names, source.delimiter)
        return Survey(encoding, chunks, plan, columns)
