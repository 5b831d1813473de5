"""Loading settings: defaults, then the TOML file, then BLOCKMON_ variables, each value checked."""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.settings.sections import SECTIONS, Settings
from monitor.settings.specs import SettingSpec, setting_specs
from monitor.settings.values import convert_value

DEFAULT_CONFIG_NAME = "blockmon.toml"


class SettingsError(ValueError):
    """A bad settings file, key or value; the message is one line naming where."""


def _read_secret_file(path: str, where: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise SettingsError(f"{where}: cannot read secret file {path}: {error.strerror}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except OSError as error:
        raise SettingsError(f"{path}: cannot read settings file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise SettingsError(f"{path}: not UTF-8 (byte {error.start})") from None


# Settings naming a file or directory: relative in a settings file, they are relative to the
# file's directory (not to wherever the command runs); from the environment, to the cwd.
PATH_KEYS = frozenset({"data_dir", "registry", "out_dir", "ca_file", "asn_database",
                       "smtp_ca_file"})


def _beside(settings_file: str | Path | None, value: str) -> str:
    if settings_file is None or Path(value).is_absolute():
        return value
    return str(Path(settings_file).parent / value)


def load_settings(path: str | Path | None = None,
                  environ: Mapping[str, str] = os.environ) -> Settings:
    """Defaults, then the TOML file, then BLOCKMON_<SECTION>_<KEY> variables; validated.

    path None reads ./blockmon.toml when it exists. Raises SettingsError naming the key.
    """
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = DEFAULT_CONFIG_NAME
    source = str(path) if path is not None else None
    document = _read_toml(Path(path)) if path is not None else {}
    where_file = source or "settings"

    for section in document:
        if section not in SECTIONS:
            raise SettingsError(f"{where_file}: unknown section [{section}] "
                                f"(known: {', '.join(SECTIONS)})")
        if not isinstance(document[section], dict):
            raise SettingsError(f"{where_file}: {section} must be a [section] table")

    specs_by_section: dict[str, dict[str, SettingSpec]] = {}
    for spec in setting_specs():
        specs_by_section.setdefault(spec.section, {})[spec.key] = spec

    built: dict[str, Any] = {}
    for section, section_type in SECTIONS.items():
        specs = specs_by_section[section]
        table = dict(document.get(section, {}))
        values: dict[str, Any] = {}
        for key, raw in table.items():
            secret_key = key.removesuffix("_file")
            if key.endswith("_file") and secret_key in specs and specs[secret_key].secret:
                where = f"{where_file}: [{section}] {key}"
                if not isinstance(raw, str):
                    raise SettingsError(f"{where}: expected the path of a file, got {raw!r}")
                values[secret_key] = _read_secret_file(_beside(path, raw), where)
                continue
            if key in PATH_KEYS and isinstance(raw, str) and raw:
                raw = _beside(path, raw)
            if key not in specs:
                raise SettingsError(f"{where_file}: [{section}] unknown key {key!r} "
                                    f"(known: {', '.join(specs)})")
            values[key] = _checked(specs[key], raw, f"{where_file}: [{section}] {key}",
                                   from_env=False)
        for spec in specs.values():
            if spec.env_var in environ:
                values[spec.key] = _checked(spec, environ[spec.env_var],
                                            f"environment {spec.env_var}", from_env=True)
            elif spec.secret and f"{spec.env_var}_FILE" in environ:
                where = f"environment {spec.env_var}_FILE"
                values[spec.key] = _read_secret_file(environ[f"{spec.env_var}_FILE"], where)
        built[section] = section_type(**values)
    _refuse_unknown_variables(environ, specs_by_section)
    return Settings(**built, source=source)


def _refuse_unknown_variables(environ: Mapping[str, str],
                              specs_by_section: Mapping[str, Mapping[str, SettingSpec]]) -> None:
    """A mistyped BLOCKMON_<SECTION>_<KEY> is an error, as a mistyped TOML key is (other
    BLOCKMON_ variables, e.g. BLOCKMON_CONFIG or the compose file's, are not settings)."""
    known = {spec.env_var for specs in specs_by_section.values() for spec in specs.values()}
    known |= {f"{spec.env_var}_FILE" for specs in specs_by_section.values()
              for spec in specs.values() if spec.secret}
    for name in sorted(environ):
        section = next((section for section in specs_by_section
                        if name.startswith(f"BLOCKMON_{section.upper()}_")), None)
        if section is None or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise SettingsError(f"environment {name}: unknown setting of [{section}]{hint}")


def _checked(spec: SettingSpec, raw: Any, where: str, *, from_env: bool) -> Any:
    try:
        value = convert_value(spec.kind, raw, from_env=from_env)
    except (ValueError, json.JSONDecodeError) as error:
        raise SettingsError(f"{where}: {error}") from None
    problem = spec.check(value) if spec.check and value is not None else None
    if problem:
        raise SettingsError(f"{where}: {problem} (got {raw!r})")
    return value
