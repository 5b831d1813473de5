"""Parses a Citizen Lab test list (CSV) into a TargetList, strictly: any bad row rejects the file."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import urlsplit

from targets.categories import is_known_category
from targets.checks import canonical_url, date_problem, slug_problem, slugify, url_problem
from targets.model import Target, TargetFileError, TargetList, TargetURL

# The columns of citizenlab/test-lists lists/*.csv, in order.
CITIZENLAB_COLUMNS = ("url", "category_code", "category_description", "date_added", "source", "notes")


def decode_test_list(raw: bytes, file: str) -> str:
    """UTF-8 text of the file; a bad byte is reported with its row (line) and value."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        bad = raw[error.start : error.end]
        raise TargetFileError(
            file,
            f"not valid UTF-8: byte {bad.hex(' ')} at offset {error.start} "
            "(test lists must be UTF-8; re-save the file as UTF-8)",
            row=line, value=bad,
        ) from None


def parse_citizenlab_text(text: str, file: str, list_name: str) -> TargetList:
    """Targets from test-list CSV text (pure). Row numbers count the header as row 1."""
    if problem := slug_problem(list_name):
        raise TargetFileError(file, f"list name: {problem}", value=list_name)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise TargetFileError(file, "empty file: expected the header " + ",".join(CITIZENLAB_COLUMNS)) from None
    except csv.Error as error:
        raise TargetFileError(file, f"malformed CSV ({error})", row=1) from None
    columns = [column.strip() for column in header]
    missing = [column for column in CITIZENLAB_COLUMNS if column not in columns]
    if missing:
        raise TargetFileError(
            file, f"header: missing column {missing[0]!r}; found {','.join(columns)!r}",
            row=1, key=missing[0], value=",".join(columns),
        )
    extra = [column for column in columns if column not in CITIZENLAB_COLUMNS]
    if extra:
        raise TargetFileError(file, f"header: unknown column {extra[0]!r}", row=1, key=extra[0], value=extra[0])
    position = {column: columns.index(column) for column in CITIZENLAB_COLUMNS}

    targets: list[Target] = []
    used_ids: set[str] = set()
    first_row_of_url: dict[str, int] = {}
    while True:
        row_line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise TargetFileError(file, f"malformed CSV ({error})", row=row_line) from None
        if not any(field.strip() for field in fields):
            continue  # blank line
        if len(fields) != len(columns):
            raise TargetFileError(
                file, f"{len(fields)} fields, expected {len(columns)} ({','.join(columns)})",
                row=row_line, value=",".join(fields),
            )
        value = {column: fields[index].strip() for column, index in position.items()}
        _check_row(value, file, row_line, first_row_of_url)
        targets.append(_target_from_row(value, list_name, used_ids))
    return TargetList(list_name, tuple(targets))


def _check_row(value: dict[str, str], file: str, row: int, first_row_of_url: dict[str, int]) -> None:
    """Raise TargetFileError for the row's first problem; remember its URL for duplicates."""

    def fail(key: str, message: str) -> TargetFileError:
        return TargetFileError(file, f"{key}: {message}", row=row, key=key, value=value[key])

    url = value["url"]
    if problem := url_problem(url):
        raise fail("url", problem)
    code = value["category_code"]
    if not is_known_category(code):
        raise fail("category_code", f"unknown category code {code!r}")
    if value["date_added"] and (problem := date_problem(value["date_added"])):
        raise fail("date_added", problem)
    duplicate_of = first_row_of_url.get(canonical_url(url))
    if duplicate_of is not None:
        raise fail("url", f"duplicate URL {url!r} (first on row {duplicate_of})")
    first_row_of_url[canonical_url(url)] = row


def _target_from_row(value: dict[str, str], list_name: str, used_ids: set[str]) -> Target:
    parts = urlsplit(value["url"])
    host = (parts.hostname or "").removeprefix("www.")
    path = parts.path.strip("/")
    base_id = slugify(f"{host}-{path}" if path else host)[:80].strip("-")
    target_id = base_id
    suffix = 2
    while target_id in used_ids:
        target_id = f"{base_id}-{suffix}"
        suffix += 1
    used_ids.add(target_id)
    provenance = [f"Citizen Lab test list, {value['category_description'] or value['category_code']}"]
    if value["date_added"]:
        provenance.append(f"added {value['date_added']}")
    if value["source"]:
        provenance.append(f"by {value['source']}")
    notes = ", ".join(provenance) + (f". {value['notes']}" if value["notes"] else "")
    role = "home" if not path and not parts.query else "content"
    return Target(
        id=target_id,
        name=parts.hostname or value["url"],
        category_code=value["category_code"],
        urls=(TargetURL(url=value["url"], role=role),),
        briefing=None,
        # Citizen Lab's CTRL category is content meant as a control.
        control=value["category_code"] == "CTRL",
        list_name=list_name,
        notes=notes,
    )


def import_citizenlab_csv(csv_path: str | Path, name: str) -> TargetList:
    """Read and check a Citizen Lab CSV; raises TargetFileError naming file, row and value."""
    path = Path(csv_path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TargetFileError(str(path), "no such test-list file") from None
    except IsADirectoryError:
        raise TargetFileError(str(path), "is a directory, expected a CSV file") from None
    return parse_citizenlab_text(decode_test_list(raw, str(path)), str(path), name)
