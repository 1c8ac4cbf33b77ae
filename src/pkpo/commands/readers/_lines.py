"""Bytes to JSON records: gzip recognised by its magic bytes, lines split on ``"\\n"`` only, a
UTF-8 byte-order mark dropped, and no line (or whole document) longer than
:data:`MAX_RECORD_BYTES`."""

from __future__ import annotations

import gzip
import json
import re
import zlib

from ._base import EvalInputError, Line

MAX_RECORD_BYTES = 512 << 20  # longest line (or whole JSON document) read: 512 MiB

_CHUNK = 1 << 20
_BLANK_LINES = re.compile(rb"[ \t\r\n]*\n")  # a run of blank lines, up to its last newline
JSON_SPACE = b" \t\r\n"


class _Rejoined:
    """A binary stream whose first bytes were read already (to look for the gzip magic)."""

    def __init__(self, head: bytes, rest):
        self.head, self.rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            if 0 <= size <= len(head):
                return head
            return head + self.rest.read(size - len(head) if size >= 0 else -1)
        return self.rest.read(size)


def open_samples(raw, source: str):
    """The decompressed byte stream of ``raw`` (a binary file object): gzip when it starts 1f 8b."""
    head = raw.read(2)
    stream = _Rejoined(head, raw)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    return stream


def chunks(stream, source: str):
    """Blocks of at most 1 MiB from ``stream``; a damaged gzip stream is one clear error."""
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except (OSError, EOFError, zlib.error) as error:
            raise EvalInputError(f"{source} is not a readable gzip file ({error}).") from None
        if not chunk:
            return
        yield chunk


def _limit_mib() -> int:
    return MAX_RECORD_BYTES >> 20


def _too_long(source: str, number: int) -> EvalInputError:
    return EvalInputError(
        f"{source} line {number} is longer than {_limit_mib()} MiB; pkpo eval reads one "
        "graded sample per line (is this a samples file?)."
    )


def lines(blocks, source: str):
    """(line number, bytes, ends in a newline) for each line that is not blank.

    Splits on ``b"\\n"`` only; a run of blank lines is skipped in one step, so a file of nothing
    but newlines costs no memory and little time. A UTF-8 byte-order mark at the start is dropped.
    """
    pending, size, number, first = [], 0, 1, True
    for chunk in blocks:
        if first:
            chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
        pos, end = 0, len(chunk)
        while pos < end:
            if not pending and (blank := _BLANK_LINES.match(chunk, pos)):
                number += chunk.count(b"\n", pos, blank.end())
                pos = blank.end()
                continue
            newline = chunk.find(b"\n", pos)
            stop = end if newline < 0 else newline
            size += stop - pos
            if size > MAX_RECORD_BYTES:
                raise _too_long(source, number)
            if newline < 0:
                pending.append(chunk[pos:])
                break
            line = b"".join([*pending, chunk[pos:newline]]) if pending else chunk[pos:newline]
            pending, size = [], 0
            if line.strip(JSON_SPACE):
                yield number, line, True
            number += 1
            pos = newline + 1
    if pending:
        line = b"".join(pending)
        if line.strip(JSON_SPACE):
            yield number, line, False


def json_value(text: bytes, where, complete: bool = True):
    """The JSON value of one line (or document); every failure is one EvalInputError."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EvalInputError(
            f"{where} is not UTF-8 text ({error.reason} at byte {error.start} of the line)."
        ) from None
    try:
        return json.loads(decoded)
    except RecursionError:
        raise EvalInputError(f"{where}: the JSON is nested too deeply to read.") from None
    except ValueError as error:  # JSONDecodeError, or an integer of more than 4300 digits
        if isinstance(error, json.JSONDecodeError):
            detail = f"{error.msg} at column {error.colno}"
        else:
            detail = str(error)
        if not complete:
            raise EvalInputError(
                f"{where}: invalid JSON ({detail}); it is the last line and has no newline, so the "
                "file looks truncated (an interrupted write?)."
            ) from None
        raise EvalInputError(f"{where}: invalid JSON ({detail}).") from None


def record(text: bytes, where, complete: bool = True) -> dict:
    """The JSON object of one line; anything else is an EvalInputError."""
    value = json_value(text, where, complete)
    if not isinstance(value, dict):
        raise EvalInputError(f"{where}: expected a JSON object, got {type(value).__name__}.")
    return value


def records(numbered_lines, source: str):
    """(where, record) for each line; where is a :class:`Line`."""
    for number, text, complete in numbered_lines:
        where = Line(source, number)
        yield where, record(text, where, complete)


def whole_document(first: bytes, numbered_lines, source: str):
    """The JSON value of the whole input when it is one JSON document over several lines, else
    None."""
    parts, size = [first], len(first)
    for _, text, _ in numbered_lines:
        size += len(text) + 1
        if size > MAX_RECORD_BYTES:
            raise EvalInputError(
                f"{source} starts like one JSON document but is longer than {_limit_mib()} MiB."
            )
        parts.append(text)
    try:
        return json_value(b"\n".join(parts), source)
    except EvalInputError:
        return None  # JSON Lines (or broken JSON): the caller names the first bad line


def read_json_file(path) -> object:
    """The JSON value of a small side file (verifiers' metadata.json), read up to the limit;
    OSError and ValueError pass through to the caller."""
    with open(path, "rb") as handle:
        return json.loads(handle.read(MAX_RECORD_BYTES))
