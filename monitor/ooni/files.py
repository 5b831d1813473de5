"""Read OONI's raw measurements line by line from JSONL and JSONL.gz files and directories."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# What OONI publishes and `oonidata sync` downloads: one measurement a line, maybe gzipped.
# Under a directory only these are read; a file named on the command line is read whatever its
# name, and a .json file holds one measurement (OONI's API and Explorer give them so).
SUFFIXES = (".jsonl", ".jsonl.gz")


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a file: the measurement, or why it is not one."""

    place: str  # "path:line"
    measurement: dict[str, Any] | None
    error: str | None = None


def measurement_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The files named, and under each directory named every OONI file, in name order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        else:
            yield path


def _open(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def read_lines(path: Path) -> Iterator[Line]:
    """Each measurement of one file, streamed: memory holds one line at a time."""
    try:
        stream = _open(path)
    except OSError as error:
        yield Line(str(path), None, error.strerror or str(error))
        return
    if path.name.endswith((".json", ".json.gz")):
        with stream:
            try:
                text = stream.read()
            except (OSError, EOFError, gzip.BadGzipFile) as error:
                yield Line(f"{path}:1", None, f"unreadable: {error}")
                return
        yield _parse(f"{path}:1", text)
        return
    number = 0
    try:
        with stream:
            for number, text in enumerate(stream, start=1):
                if not text.strip():
                    continue
                yield _parse(f"{path}:{number}", text)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        yield Line(f"{path}:{number + 1}", None, f"unreadable: {error}")


def _parse(place: str, text: str) -> Line:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return Line(place, None, f"not JSON ({error.msg} at column {error.colno})")
    if not isinstance(value, dict):
        return Line(place, None, f"not a measurement (a JSON {type(value).__name__})")
    return Line(place, value)
