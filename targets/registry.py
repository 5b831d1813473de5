"""Reads and checks target files (the shipped registry and saved lists) into TargetList objects."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from targets.briefing import BriefingText
from targets.categories import is_known_category
from targets.checks import (
    MAX_QUOTE_LENGTH,
    canonical_url,
    date_problem,
    ends_before_start,
    period_problem,
    slug_problem,
    url_problem,
)
from targets.model import (
    BRIEFING_LIST_NAME,
    CLAIM_KINDS,
    URL_ROLES,
    BriefingClaim,
    Target,
    TargetFileError,
    TargetList,
    TargetURL,
)
from targets.toml_lines import Place, TomlLines, locate_toml_lines

DEFAULT_REGISTRY_PATH = Path(__file__).resolve().parent / "registry.toml"

TOP_KEYS = frozenset({"list", "target"})
LIST_KEYS = frozenset({"name", "description", "source", "imported_at"})
TARGET_KEYS = frozenset(
    {"id", "name", "category_code", "control", "notes", "url", "briefing", "throughput_url",
     "baseline_url", "repeats"}
)
URL_KEYS = frozenset({"url", "role", "since", "until", "note"})
BRIEFING_KEYS = frozenset({"section", "quote", "line", "period", "claim"})

# More measurements of one URL per round than this would hammer a site for little more evidence.
MAX_REPEATS = 10

_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")


class _RegistryReader:
    """Walks the parsed TOML, building targets and collecting every problem with its line."""

    def __init__(self, file: str, lines: TomlLines, briefing: BriefingText | None) -> None:
        self.file = file
        self.lines = lines
        self.briefing = briefing
        self.problems: list[TargetFileError] = []

    def problem(self, place: Place, key: str | None, message: str, value: object = None) -> None:
        self.problems.append(
            TargetFileError(
                self.file, message, line=self.lines.line_of(place, key), key=key, value=value
            )
        )

    def unknown_keys(self, table: dict[str, Any], allowed: frozenset[str], place: Place, what: str) -> None:
        for key in table:
            if key not in allowed:
                self.problem(
                    place, key, f"unknown key {key!r} in {what} (allowed: {', '.join(sorted(allowed))})", key
                )

    def text(self, table: dict[str, Any], key: str, place: Place, what: str, *, required: bool) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                self.problem(place, None, f"{what}: missing required key {key!r}")
            return None
        if not isinstance(value, str):
            self.problem(place, key, f"{what}: {key} must be a string, not {value!r}", value)
            return None
        if required and not value.strip():
            self.problem(place, key, f"{what}: {key} is empty", value)
            return None
        return value

    def read(self, data: dict[str, Any], default_list_name: str) -> TargetList:
        self.unknown_keys(data, TOP_KEYS, (), "the file (top level)")
        list_table = data.get("list", {})
        list_name = default_list_name
        if not isinstance(list_table, dict):
            self.problem(("list",), None, "list must be a table [list]", list_table)
        else:
            self.unknown_keys(list_table, LIST_KEYS, ("list",), "[list]")
            list_name = self.text(list_table, "name", ("list",), "[list]", required=False) or list_name
        raw_targets = data.get("target", [])
        if not isinstance(raw_targets, list) or not all(isinstance(t, dict) for t in raw_targets):
            self.problem((), "target", "target must be an array of tables [[target]]", raw_targets)
            return TargetList(list_name, ())
        targets: list[Target] = []
        first_place_of_id: dict[str, int | None] = {}
        first_place_of_url: dict[str, tuple[str, int | None]] = {}
        for index, table in enumerate(raw_targets):
            target = self.read_target(table, index, list_name)
            if target is None:
                continue
            place: Place = ("target", index)
            if target.id in first_place_of_id:
                self.problem(
                    place, "id",
                    f"duplicate id {target.id!r} (first at line {first_place_of_id[target.id]})",
                    target.id,
                )
            else:
                first_place_of_id[target.id] = self.lines.line_of(place, "id")
            for url_index, target_url in enumerate(target.urls):
                key = canonical_url(target_url.url)
                url_place: Place = ("url", index, url_index)
                if key in first_place_of_url:
                    owner, line = first_place_of_url[key]
                    self.problem(
                        url_place, "url",
                        f"duplicate URL {target_url.url!r} (already in target {owner!r} at line {line})",
                        target_url.url,
                    )
                else:
                    first_place_of_url[key] = (target.id, self.lines.line_of(url_place, "url"))
            targets.append(target)
        return TargetList(list_name, tuple(targets))

    def read_target(self, table: dict[str, Any], index: int, list_name: str) -> Target | None:
        place: Place = ("target", index)
        self.unknown_keys(table, TARGET_KEYS, place, "[[target]]")
        problems_before = len(self.problems)
        target_id = self.text(table, "id", place, f"target #{index + 1}", required=True)
        what = f"target {target_id!r}" if target_id else f"target #{index + 1}"
        if target_id is not None and (problem := slug_problem(target_id)):
            self.problem(place, "id", f"{what}: {problem}", target_id)
        name = self.text(table, "name", place, what, required=True)
        category = self.text(table, "category_code", place, what, required=True)
        if category is not None and not is_known_category(category):
            self.problem(
                place, "category_code",
                f"{what}: unknown category_code {category!r} (see targets/categories.py)", category,
            )
        notes = self.text(table, "notes", place, what, required=False)
        control = table.get("control", False)
        if not isinstance(control, bool):
            self.problem(place, "control", f"{what}: control must be true or false, not {control!r}", control)
            control = False
        rate_urls: dict[str, str | None] = {}
        for key in ("throughput_url", "baseline_url"):
            rate_urls[key] = self.text(table, key, place, what, required=False)
            if rate_urls[key] is not None and (problem := url_problem(rate_urls[key] or "")):
                self.problem(place, key, f"{what}: {key}: {problem}", rate_urls[key])
        repeats = table.get("repeats", 1)
        if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= MAX_REPEATS:
            self.problem(place, "repeats",
                         f"{what}: repeats must be a whole number from 1 to {MAX_REPEATS}, not {repeats!r}",
                         repeats)
            repeats = 1
        urls = self.read_urls(table.get("url", []), index, what)
        if not urls and not notes:
            self.problem(place, None, f"{what}: has no URL and no notes saying why")
        briefing = None
        if "briefing" in table:
            briefing = self.read_briefing(table["briefing"], index, what)
        if len(self.problems) > problems_before or target_id is None or name is None or category is None:
            return None
        return Target(
            id=target_id, name=name, category_code=category, urls=urls, briefing=briefing,
            control=control, list_name=list_name, notes=notes,
            throughput_url=rate_urls["throughput_url"], baseline_url=rate_urls["baseline_url"],
            repeats=repeats,
        )

    def read_urls(self, raw: object, index: int, what: str) -> tuple[TargetURL, ...]:
        if not isinstance(raw, list) or not all(isinstance(u, dict) for u in raw):
            self.problem(("target", index), "url", f"{what}: url must be an array of tables [[target.url]]", raw)
            return ()
        urls: list[TargetURL] = []
        for url_index, table in enumerate(raw):
            place: Place = ("url", index, url_index)
            self.unknown_keys(table, URL_KEYS, place, f"[[target.url]] of {what}")
            url = self.text(table, "url", place, f"{what} url #{url_index + 1}", required=True)
            if url is not None and (problem := url_problem(url)):
                self.problem(place, "url", f"{what}: {problem}", url)
            role = self.text(table, "role", place, f"{what} url #{url_index + 1}", required=True)
            if role is not None and role not in URL_ROLES:
                self.problem(place, "role", f"{what}: unknown role {role!r} (one of {', '.join(URL_ROLES)})", role)
            dates: dict[str, str | None] = {}
            for key in ("since", "until"):
                dates[key] = self.text(table, key, place, what, required=False)
                if dates[key] is not None and (problem := date_problem(dates[key] or "")):
                    self.problem(place, key, f"{what}: {key}: {problem}", dates[key])
            since, until = dates["since"], dates["until"]
            if (since and until and not date_problem(since) and not date_problem(until)
                    and ends_before_start(since, until)):
                self.problem(place, "until", f"{what}: until {until!r} is before since {since!r}",
                             until)
            note = self.text(table, "note", place, what, required=False)
            if url is not None and role is not None:
                urls.append(TargetURL(url, role, dates["since"], dates["until"], note))
        return tuple(urls)

    def read_briefing(self, raw: object, index: int, what: str) -> BriefingClaim | None:
        place: Place = ("briefing", index)
        if not isinstance(raw, dict):
            self.problem(("target", index), "briefing", f"{what}: briefing must be a table [target.briefing]", raw)
            return None
        self.unknown_keys(raw, BRIEFING_KEYS, place, f"[target.briefing] of {what}")
        section = self.text(raw, "section", place, f"{what} briefing", required=True)
        quote = self.text(raw, "quote", place, f"{what} briefing", required=True)
        period = self.text(raw, "period", place, f"{what} briefing", required=True)
        claim = self.text(raw, "claim", place, f"{what} briefing", required=True)
        line = raw.get("line")
        if line is None:
            self.problem(place, None, f"{what} briefing: missing required key 'line'")
        elif not isinstance(line, int) or isinstance(line, bool) or line < 1:
            self.problem(place, "line", f"{what} briefing: line must be a positive integer, not {line!r}", line)
            line = None
        if period is not None and (problem := period_problem(period)):
            self.problem(place, "period", f"{what} briefing: {problem}", period)
        if claim is not None and claim not in CLAIM_KINDS:
            self.problem(place, "claim", f"{what} briefing: unknown claim {claim!r} (one of {', '.join(CLAIM_KINDS)})", claim)
        if quote is not None and len(quote) > MAX_QUOTE_LENGTH:
            self.problem(
                place, "quote",
                f"{what} briefing: quote is {len(quote)} characters; keep it to one or two sentences "
                f"(at most {MAX_QUOTE_LENGTH})", quote[:60] + "…",
            )
        if self.briefing is not None and quote is not None and section is not None:
            self.check_against_briefing(place, what, section, quote, line)
        if section is None or quote is None or period is None or claim is None or line is None:
            return None
        return BriefingClaim(section=section, quote=quote, line=line, period=period, claim=claim)

    def check_against_briefing(self, place: Place, what: str, section: str, quote: str, line: int | None) -> None:
        assert self.briefing is not None
        section_lines = self.briefing.section_lines(section)
        if not section_lines:
            self.problem(place, "section", f"{what} briefing: section {section!r} is not a heading of the briefing", section)
        found_on = self.briefing.quote_lines(quote)
        if not found_on:
            self.problem(place, "quote", f"{what} briefing: quote not found in the briefing: {quote[:80]!r}", quote)
            return
        if line is not None and line not in found_on:
            where = ", ".join(str(number) for number in found_on)
            self.problem(place, "line", f"{what} briefing: line {line} is wrong: the quote starts on line {where}", line)
        if section_lines and not any(heading < found_on[0] for heading in section_lines):
            self.problem(place, "section", f"{what} briefing: the quote comes before section {section!r}", section)


def check_registry_text(
    text: str, file: str, briefing: BriefingText | None = None, default_list_name: str = BRIEFING_LIST_NAME
) -> tuple[TargetList, list[TargetFileError]]:
    """Every problem of a registry text, and the targets that were valid (pure)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        position = _TOML_POSITION.search(str(error))
        line = int(position.group(1)) if position else None
        message = _TOML_POSITION.sub("", str(error)).strip()
        return TargetList(default_list_name, ()), [TargetFileError(file, f"invalid TOML: {message}", line=line)]
    reader = _RegistryReader(file, locate_toml_lines(text), briefing)
    target_list = reader.read(data, default_list_name)
    return target_list, reader.problems


def parse_registry_text(
    text: str, file: str, briefing: BriefingText | None = None, default_list_name: str = BRIEFING_LIST_NAME
) -> TargetList:
    """The targets of a registry text; raises TargetFileError on its first problem."""
    target_list, problems = check_registry_text(text, file, briefing, default_list_name)
    if problems:
        raise problems[0]
    return target_list


def read_target_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetFileError(str(path), "no such target file") from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise TargetFileError(str(path), f"not valid UTF-8 ({error.reason})", line=line) from None


def load_registry(path: str | Path | None = None) -> TargetList:
    """The shipped registry (list "briefing") or another registry file; raises TargetFileError."""
    registry_path = Path(path) if path is not None else DEFAULT_REGISTRY_PATH
    return parse_registry_text(read_target_file(registry_path), str(registry_path))
