"""A CSV file's delimiter, when its name does not say and no setting does."""

from __future__ import annotations

import csv

from granula_pipeline.lib.formats.csv.records import first_record_end

DELIMITERS = (",", ";", "|", "\t")


def sniff_delimiter(head: bytes) -> str:
    """The delimiter of `, ; | tab` that splits the first record into the most fields (ties go to
    the earlier, the comma first); a comma if none splits it."""
    end = first_record_end(head) or len(head)
    line = head[:end].decode("utf-8", errors="replace")
    fields = {d: len(next(csv.reader([line], delimiter=d), [])) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: fields[d])
    return best if fields[best] > 1 else ","
