"""Writes reports into the archive (<out_dir>/<period>/report.*, charts/, evidence/) and lists it."""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from monitor.store import Store
from monitor.store.queries import ReadDatabase, is_uid, load_measurement_documents
from reports.build import Report, build_report
from reports.collect import collect_inputs
from reports.periods import Period
from reports.render_csv import render_csv_tables
from reports.render_html import render_html
from reports.render_json import render_json
from reports.render_markdown import chart_files, render_markdown
from targets.model import Target

# What `report` writes unless told; csv (a folder of one file per table) on request.
DEFAULT_FORMATS: Final[tuple[str, ...]] = ("html", "md", "json")
FORMATS: Final[tuple[str, ...]] = (*DEFAULT_FORMATS, "csv")
_FILE_NAMES: Final[dict[str, str]] = {"html": "report.html", "md": "report.md",
                                      "json": "report.json", "csv": "csv/targets.csv"}
_LABEL = re.compile(r"\d{4}-(\d{2}|W\d{2}|\d{2}-\d{2}_\d{4}-\d{2}-\d{2})(--[A-Za-z0-9_.+-]+)?")
_LIST_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def archive_label(period: Period, lists: Iterable[str] = ()) -> str:
    """The archive folder of a report: the period, then `--` and its lists when limited
    (2026-12--briefing, 2026-12--briefing+kz); a list name unfit for a folder is refused."""
    chosen = list(dict.fromkeys(lists))
    for name in chosen:
        if not _LIST_NAME.fullmatch(name):
            raise ValueError(f"list name {name!r}: use letters, digits, '.', '_' or '-'")
    return period.label + (f"--{'+'.join(chosen)}" if chosen else "")


@dataclass(frozen=True, slots=True)
class WrittenReport:
    directory: Path
    files: tuple[Path, ...]
    evidence_count: int
    measurements: int = 0  # in the period (0: an empty report)


@dataclass(frozen=True, slots=True)
class ArchivedReport:
    label: str
    directory: Path
    formats: tuple[str, ...]
    modified_at: str


def _write_text(path: Path, text: str) -> Path:
    # Written beside and renamed: a reader of the archive never sees half a report. The
    # partial file is this writer's own: the weekly job and a dashboard "generate now" may
    # write the same period at once, and a shared name made one of them fail.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                            suffix=".partial")
    partial = Path(partial_name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as partial_file:
            partial_file.write(text)
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def write_report(report: Report, out_dir: str | Path, formats: Iterable[str],
                 documents: Mapping[str, str]) -> WrittenReport:
    """Writes the chosen formats and the evidence JSON of `documents` under out_dir/<label>/."""
    directory = Path(out_dir) / archive_label(report.period, report.lists)
    written: list[Path] = []
    chosen = list(dict.fromkeys(formats))
    for name in chosen:
        if name not in FORMATS:
            raise ValueError(f"report format {name!r}: use one of {', '.join(FORMATS)}")
    for name in chosen:
        if name == "html":
            written.append(_write_text(directory / _FILE_NAMES[name], render_html(report)))
        elif name == "md":
            written.append(_write_text(directory / _FILE_NAMES[name], render_markdown(report)))
            for relative, svg in chart_files(report).items():
                written.append(_write_text(directory / relative, svg))
        elif name == "csv":
            for file_name, text in render_csv_tables(report).items():
                written.append(_write_text(directory / "csv" / file_name, text))
        else:
            written.append(_write_text(directory / _FILE_NAMES[name], render_json(report)))
    count = 0
    for uid, text in sorted(documents.items()):
        if not is_uid(uid):
            continue  # never a path from data we did not make
        # The stored text as is: the evidence is the measurement exactly as it was recorded.
        _write_text(directory / "evidence" / f"{uid}.json", text.rstrip("\n") + "\n")
        count += 1
    return WrittenReport(directory, tuple(written), count)


def generate_report(store: Store, period: Period, out_dir: str | Path,
                    formats: Iterable[str] = DEFAULT_FORMATS, *, targets: list[Target] | None = None,
                    now: datetime | None = None, lists: Sequence[str] = ()) -> WrittenReport:
    """Reads the period from the store, builds the report, writes it and its evidence.
    `lists` limits it to those lists (its folder says which: archive_label)."""
    archive_label(period, lists)  # refuses a bad list name before any work
    report = build_report(collect_inputs(store, period, targets, now=now, lists=lists))
    documents = load_measurement_documents(ReadDatabase(store), report.evidence_uids)
    written = write_report(report, out_dir, formats, documents)
    return dataclasses.replace(written, measurements=report.summary.measurements)


def list_archive(out_dir: str | Path) -> list[ArchivedReport]:
    """Reports in the archive, newest period first."""
    root = Path(out_dir)
    if not root.is_dir():
        return []
    found = []
    for directory in root.iterdir():
        if not directory.is_dir() or not _LABEL.fullmatch(directory.name):
            continue
        formats = tuple(name for name in FORMATS if (directory / _FILE_NAMES[name]).is_file())
        if not formats:
            continue
        modified = max((directory / _FILE_NAMES[name]).stat().st_mtime for name in formats)
        found.append(ArchivedReport(directory.name, directory, formats,
                                    datetime.fromtimestamp(modified, UTC).strftime(
                                        "%Y-%m-%dT%H:%M:%SZ")))
    return sorted(found, key=lambda item: item.label, reverse=True)


def report_file_name(file_format: str) -> str:
    return _FILE_NAMES[file_format]
