"""Receive a multipart upload straight into the inbox, checking it while it streams.

The request body is parsed as it arrives (python-multipart's push parser) and the `file` part is
written to a staging file beside its final place, chunk by chunk: the upload is never held in
memory or spooled elsewhere, and reading stops the moment it passes MAX_UPLOAD_MB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio
from anyio import to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from granula_pipeline.lib.errors import BadInputError

FILE_FIELD = "file"
MAX_BOUNDARY = 70  # RFC 2046
MAX_PARTS = 16


class UploadTooLarge(BadInputError):
    """The file passed MAX_UPLOAD_MB: answered 413."""


class UploadTooSlow(Exception):
    """The client sent nothing for too long, or too slowly on average: answered 408."""


class UploadMissing(Exception):
    """The request carries no file in the `file` field."""


@dataclass
class StagedUpload:
    """The uploaded file, complete, under a staging name the sensor ignores."""

    destination: Path
    staging: Path
    size_bytes: int


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    is_upload: bool = False


class UploadReceiver:
    """Streams the `file` part of a multipart body into a staging file.

    `stage(filename, content_type)` checks the part's name and type and returns where the file
    will go and the staging path to write to first; it raises BadInputError to refuse the file
    before a byte of it is written.
    """

    def __init__(
        self, stage: Callable[[str, str], tuple[Path, Path]], *, max_bytes: int, max_mb: int
    ):
        self._stage = stage
        self._max_bytes = max_bytes
        self._max_mb = max_mb
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""
        self._pending: list[bytes] = []
        self._target: BinaryIO | None = None
        self._staging: Path | None = None
        self._destination: Path | None = None
        self._size = 0
        self._parts = 0
        self._complete = False

    async def receive(self, content_type: str, body: AsyncIterator[bytes]) -> StagedUpload:
        """Read the whole body; return the staged file or raise (leaving nothing behind)."""
        kind, params = parse_options_header(content_type)
        if kind != b"multipart/form-data" or b"boundary" not in params:
            raise UploadMissing
        if not 0 < len(params[b"boundary"]) <= MAX_BOUNDARY:
            raise BadInputError(
                f"the multipart boundary must be 1 to {MAX_BOUNDARY} characters (RFC 2046)"
            )
        parser = MultipartParser(
            params[b"boundary"],
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )
        try:
            async for chunk in body:
                parser.write(chunk)
                await self._flush()
            parser.finalize()
            await self._flush()
            return self._result()
        except FormParserError as exc:
            self._discard()
            raise BadInputError(f"the multipart body is malformed: {exc}") from exc
        except BaseException:
            self._discard()
            raise

    def _result(self) -> StagedUpload:
        if self._staging is None or self._destination is None:
            raise UploadMissing
        self._close()
        if not self._complete:
            self._discard()
            raise BadInputError("the request ended before the file did; send it again")
        if self._size == 0:
            self._discard()
            raise BadInputError("the file is empty; send a CSV with a header and rows")
        return StagedUpload(self._destination, self._staging, self._size)

    async def _flush(self) -> None:
        if self._pending and self._target is not None:
            data, self._pending = b"".join(self._pending), []
            await to_thread.run_sync(self._target.write, data)

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise BadInputError(f"the body has over {MAX_PARTS} parts; send the file alone")
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part.headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, disposition = parse_options_header(self._part.headers.get(b"content-disposition"))
        if disposition.get(b"name") != FILE_FIELD.encode() or b"filename" not in disposition:
            return  # other fields, and a `file` field that is text, are not the upload
        if self._staging is not None:
            raise BadInputError("send one file per request")
        self._part.is_upload = True
        content_type = parse_options_header(self._part.headers.get(b"content-type"))[0]
        filename = disposition[b"filename"].decode("utf-8", errors="replace")
        self._destination, self._staging = self._stage(filename, content_type.decode("latin-1"))
        self._target = self._staging.open("xb")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._part.is_upload:
            return
        self._size += end - start
        if self._size > self._max_bytes:
            raise UploadTooLarge(
                f"the file is over MAX_UPLOAD_MB={self._max_mb} MiB; split it or ask for a "
                "higher limit"
            )
        self._pending.append(data[start:end])

    def _on_part_end(self) -> None:
        if self._part.is_upload:
            self._complete = True
            self._part.is_upload = False

    def _close(self) -> None:
        if self._target is not None:
            self._target.close()
            self._target = None

    def _discard(self) -> None:
        self._close()
        if self._staging is not None:
            self._staging.unlink(missing_ok=True)


async def paced(
    body: AsyncIterator[bytes], *, idle_seconds: float, min_bytes_per_second: float
) -> AsyncIterator[bytes]:
    """`body`, dropped (UploadTooSlow) when nothing comes for `idle_seconds`, or when, that long
    after it began, it has come slower than `min_bytes_per_second` on average."""
    started = anyio.current_time()
    received = 0
    iterator = aiter(body)
    while True:
        try:
            with anyio.fail_after(idle_seconds):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise UploadTooSlow(f"nothing came for {idle_seconds:g} s") from exc
        received += len(chunk)
        elapsed = anyio.current_time() - started
        if elapsed > idle_seconds and received < min_bytes_per_second * elapsed:
            raise UploadTooSlow(
                f"it came at {received / elapsed / 1024:.1f} KiB/s, under "
                f"API_MIN_UPLOAD_KIB_PER_SECOND={min_bytes_per_second / 1024:g}"
            )
        yield chunk
