"""Saves target lists as TOML files (atomically) and finds a list by name or path."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from targets.checks import slug_problem
from targets.model import BRIEFING_LIST_NAME, Target, TargetFileError, TargetList
from targets.registry import load_registry, parse_registry_text, read_target_file

DEFAULT_DATA_DIR = "./blockmon-data"


def default_lists_dir() -> Path:
    """<data dir>/lists, the data dir from BLOCKMON_DATA_DIR (or the storage setting's env
    name) else ./blockmon-data. The CLI passes the configured directory explicitly."""
    data_dir = (
        os.environ.get("BLOCKMON_DATA_DIR")
        or os.environ.get("BLOCKMON_STORAGE_DATA_DIR")
        or DEFAULT_DATA_DIR
    )
    return Path(data_dir) / "lists"


def list_file(lists_dir: str | Path, name: str) -> Path:
    return Path(lists_dir) / f"{name}.toml"


def _toml_string(value: str) -> str:
    # JSON's string escapes are a subset of TOML basic-string escapes; DEL must be escaped too.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def render_target_list(target_list: TargetList, *, source: str | None = None, imported_at: str | None = None) -> str:
    """The list in the registry's TOML format, so one reader and one validator serve both."""
    lines = [
        f"# Target list {target_list.name!r}, written by blockmon; edit with care and run",
        "# `blockmon targets validate` on it afterwards.",
        "[list]",
        f"name = {_toml_string(target_list.name)}",
    ]
    if source is not None:
        lines.append(f"source = {_toml_string(source)}")
    if imported_at is not None:
        lines.append(f"imported_at = {_toml_string(imported_at)}")
    for target in target_list.targets:
        lines.extend(_render_target(target))
    return "\n".join(lines) + "\n"


def _render_target(target: Target) -> list[str]:
    lines = [
        "",
        "[[target]]",
        f"id = {_toml_string(target.id)}",
        f"name = {_toml_string(target.name)}",
        f"category_code = {_toml_string(target.category_code)}",
    ]
    if target.control:
        lines.append("control = true")
    if target.notes is not None:
        lines.append(f"notes = {_toml_string(target.notes)}")
    if target.repeats != 1:
        lines.append(f"repeats = {target.repeats}")
    for key in ("throughput_url", "baseline_url"):
        value = getattr(target, key)
        if value is not None:
            lines.append(f"{key} = {_toml_string(value)}")
    for target_url in target.urls:
        lines += ["[[target.url]]", f"url = {_toml_string(target_url.url)}", f"role = {_toml_string(target_url.role)}"]
        for key in ("since", "until", "note"):
            value = getattr(target_url, key)
            if value is not None:
                lines.append(f"{key} = {_toml_string(value)}")
    if target.briefing is not None:
        claim = target.briefing
        lines += [
            "[target.briefing]",
            f"section = {_toml_string(claim.section)}",
            f"quote = {_toml_string(claim.quote)}",
            f"line = {claim.line}",
            f"period = {_toml_string(claim.period)}",
            f"claim = {_toml_string(claim.claim)}",
        ]
    return lines


def save_list(
    target_list: TargetList, lists_dir: str | Path, *, source: str | None = None, imported_at: str | None = None
) -> Path:
    """Write <lists_dir>/<name>.toml atomically (temp file + rename): readers never see half a list."""
    if problem := slug_problem(target_list.name):
        raise TargetFileError(str(lists_dir), f"list name: {problem}", value=target_list.name)
    if target_list.name == BRIEFING_LIST_NAME:
        raise TargetFileError(str(lists_dir), f"list name {BRIEFING_LIST_NAME!r} is the shipped registry's", value=target_list.name)
    directory = Path(lists_dir)
    directory.mkdir(parents=True, exist_ok=True)
    text = render_target_list(target_list, source=source, imported_at=imported_at)
    # Read it back before it replaces anything: a list we cannot load again is not saved.
    parse_registry_text(text, f"<{target_list.name} as rendered>", default_list_name=target_list.name)
    destination = list_file(directory, target_list.name)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target_list.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination


def saved_list_names(lists_dir: str | Path) -> list[str]:
    directory = Path(lists_dir)
    if not directory.is_dir():
        return []
    return sorted(path.stem for path in directory.glob("*.toml") if not path.name.startswith("."))


def load_list(name_or_path: str | Path, lists_dir: str | Path | None = None) -> TargetList:
    """"briefing" (the shipped registry), a list saved in lists_dir, or a target file's path."""
    if str(name_or_path) == BRIEFING_LIST_NAME:
        return load_registry()
    text_value = str(name_or_path)
    if text_value.endswith(".toml") or os.sep in text_value:
        path = Path(text_value)
        return parse_registry_text(read_target_file(path), str(path), default_list_name=path.stem)
    directory = Path(lists_dir) if lists_dir is not None else default_lists_dir()
    path = list_file(directory, text_value)
    if not path.is_file():
        known = ", ".join([BRIEFING_LIST_NAME, *saved_list_names(directory)])
        raise TargetFileError(str(directory), f"no target list named {text_value!r} (known: {known})", value=text_value)
    return parse_registry_text(read_target_file(path), str(path), default_list_name=text_value)
