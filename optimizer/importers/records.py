"""What every job-history format is parsed into: one `Record` per job that ran on GPUs,
the bad rows (each with its line in the source file) and the rows skipped on purpose.

The format parsers (`slurm.py`, `kubernetes.py`, `philly.py`, `alibaba.py`) only read
their layout into records; the rules that turn records into scenario jobs live in
`rules.py`, one place for every format.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Record:
    """One job of a history, as its source recorded it (times are timezone-aware)."""

    line: int  # 1-based line of the source file where the job's row or object starts
    job_id: str
    gpus: int  # devices it held at once
    gpu_types: tuple[str, ...]  # the source's names of the types it may run on; () = any
    submit: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp
    preemptible: bool | None = None  # what the source says; None = the import's default


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Parsed:
    """What a parser read: the records, every bad row, and the rows skipped by rule (a
    CPU-only job, a job step, a job that never ran), counted by reason."""

    records: list[Record] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


class TimeParser:
    """Timestamps of one source: naive ones are in `naive_tz` (traces and `sacct` print
    local time without a zone)."""

    def __init__(self, naive_tz: str):
        self.naive_tz = naive_tz

    def __call__(self, text: Any) -> pd.Timestamp | None:
        """The instant `text` names, or None if it names none (empty, Unknown, None)."""
        if text is None or (isinstance(text, str) and text.strip() in _NO_TIME):
            return None
        try:
            t = pd.Timestamp(str(text).strip())
        except (ValueError, TypeError):
            raise ValueError(f"not a timestamp: {text!r}") from None
        if pd.isna(t):
            return None
        return t.tz_localize(self.naive_tz) if t.tzinfo is None else t

    def seconds(self, text: str, epoch: pd.Timestamp) -> pd.Timestamp | None:
        """`text` seconds after `epoch` (traces that count from their own start)."""
        if text.strip() in _NO_TIME:
            return None
        try:
            return epoch + pd.Timedelta(seconds=float(text))
        except ValueError:
            raise ValueError(f"not a number of seconds: {text!r}") from None


_NO_TIME = {"", "Unknown", "None", "none", "null", "nan", "NaN", "N/A"}


class LayoutError(ValueError):
    """The document is not in the layout its format needs, from `line` on."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line

    def bad_row(self) -> BadRow:
        return BadRow(self.line, str(self))


class JsonItems:
    """The elements of a JSON document's array (the top-level array, or the array under a
    top-level key such as Kubernetes' `items`), each with the line it starts on.

    `json.loads` gives the values but not where they are; a bad element must be reported
    by its line, so the array is walked with `raw_decode`, one element at a time."""

    def __init__(self, text: str):
        self.text = text
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self._dec = json.JSONDecoder()

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self._newlines, pos - 1) + 1

    def _ws(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t\r\n":
            pos += 1
        return pos

    def _expect(self, pos: int, chars: str) -> int:
        pos = self._ws(pos)
        if pos >= len(self.text) or self.text[pos] not in chars:
            found = self.text[pos : pos + 10] if pos < len(self.text) else "end of file"
            raise LayoutError(self.line_of(pos), f"expected {' or '.join(chars)}, found {found!r}")
        return pos

    def _value(self, pos: int) -> tuple[Any, int]:
        try:
            return self._dec.raw_decode(self.text, pos)
        except json.JSONDecodeError as exc:
            raise LayoutError(exc.lineno, f"not valid JSON: {exc.msg}") from None

    def array(self, key: str | None = None) -> Iterator[tuple[int, Any]]:
        """(line, element) of the top-level array, or of the array under top-level `key`;
        raises LayoutError naming the line where the document stops being what it should be."""
        pos = self._ws(0)
        if key is not None:
            pos = self._expect(pos, "{") + 1
            while True:
                pos = self._expect(pos, '"}')
                if self.text[pos] == "}":
                    raise LayoutError(self.line_of(pos), f"no {key!r} array in the document")
                name, pos = self._value(pos)
                pos = self._expect(pos, ":") + 1
                if name == key:
                    break
                _, pos = self._value(self._ws(pos))
                pos = self._expect(pos, ",}")
                if self.text[pos] == "}":
                    raise LayoutError(self.line_of(pos), f"no {key!r} array in the document")
                pos += 1
        pos = self._expect(pos, "[") + 1
        if self.text[self._ws(pos) : self._ws(pos) + 1] == "]":
            return
        while True:
            pos = self._ws(pos)
            value, end = self._value(pos)
            yield self.line_of(pos), value
            pos = self._expect(end, ",]")
            if self.text[pos] == "]":
                return
            pos += 1
