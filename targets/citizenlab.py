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
    """Targets from test-list CSV text (pure); the first problem rejects the file (raised).
    Row numbers count the header as row 1."""
    target_list, problems = check_citizenlab_text(text, file, list_name)
    if problems:
        raise problems[0]
    return target_list


def check_citizenlab_text(text: str, file: str,
                          list_name: str) -> tuple[TargetList, list[TargetFileError]]:
    """The rows that are fine and every problem of the others (pure): `targets validate`
    reports them all in one run. A bad header is raised: no row can be read without it."""
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
    problems: list[TargetFileError] = []
    used_ids: set[str] = set()
    first_row_of_url: dict[str, int] = {}
    while True:
        row_line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            # The reader cannot go past broken quoting: what came before is still checked.
            problems.append(TargetFileError(file, f"malformed CSV ({error})", row=row_line))
            break
        if not any(field.strip() for field in fields):
            continue  # blank line
        if len(fields) != len(columns):
            problems.append(TargetFileError(
                file, f"{len(fields)} fields, expected {len(columns)} ({','.join(columns)})",
                row=row_line, value=",".join(fields)))
            continue
        value = {column: fields[index].strip() for column, index in position.items()}
        row_problems = _row_problems(value, file, row_line, first_row_of_url)
        problems += row_problems
        if not row_problems:
            targets.append(_target_from_row(value, list_name, used_ids))
    return TargetList(list_name, tuple(targets)), problems


def _row_problems(value: dict[str, str], file: str, row: int,
                  first_row_of_url: dict[str, int]) -> list[TargetFileError]:
    """Every problem of one row; remembers its URL for duplicates."""

    def problem(key: str, message: str) -> TargetFileError:
        return TargetFileError(file, f"{key}: {message}", row=row, key=key, value=value[key])

    found = []
    url = value["url"]
    if url_error := url_problem(url):
        found.append(problem("url", url_error))
    code = value["category_code"]
    if not is_known_category(code):
        found.append(problem("category_code", f"unknown category code {code!r}"))
    if value["date_added"] and (date_error := date_problem(value["date_added"])):
        found.append(problem("date_added", date_error))
    if not url_error:
        duplicate_of = first_row_of_url.get(canonical_url(url))
        if duplicate_of is not None:
            found.append(problem("url", f"duplicate URL {url!r} (first on row {duplicate_of})"))
        else:
            first_row_of_url[canonical_url(url)] = row
    return found


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
    return parse_citizenlab_text(read_test_list(csv_path), str(csv_path), name)


def read_test_list(csv_path: str | Path) -> str:
    """The text of a test-list file; TargetFileError when it cannot be read as UTF-8."""
    path = Path(csv_path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TargetFileError(str(path), "no such test-list file") from None
    except IsADirectoryError:
        raise TargetFileError(str(path), "is a directory, expected a CSV file") from None
    return decode_test_list(raw, str(path))
