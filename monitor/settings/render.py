"""Settings as text: the commented file `blockmon init` writes, and docs/settings.md's tables."""

from __future__ import annotations

from monitor.settings.specs import setting_specs
from monitor.settings.values import toml_value


def render_default_config() -> str:
    """The commented TOML file `blockmon init` writes; it loads to the defaults."""
    lines = ["# blockmon settings. Every key is shown with its default; uncomment to change.",
             "# Each key can also be set by the environment: BLOCKMON_<SECTION>_<KEY>.",
             "# Secrets (tokens) may instead be read from a file: <key>_file = \"/run/secrets/x\".",
             "# Reference: docs/settings.md"]
    current = None
    for spec in setting_specs():
        if spec.section != current:
            current = spec.section
            lines += ["", f"[{spec.section}]"]
        lines.append(f"# {spec.help}")
        if spec.key == "watch_windows":
            lines.append('# watch_windows = [{start = "2026-12-01T00:00:00Z", '
                         'end = "2026-12-03T00:00:00Z", interval_minutes = 10, lists = []}]')
        elif spec.default is None:
            lines.append(f"# {spec.key} = {spec.example or toml_value('')}")
        elif spec.starter:
            lines.append(f"{spec.key} = {toml_value(spec.default)}")
        else:
            lines.append(f"# {spec.key} = {toml_value(spec.default)}")
    return "\n".join(lines) + "\n"


def render_settings_table() -> str:
    """The Markdown reference table docs/settings.md must contain (a test compares them)."""
    lines = []
    current = None
    for spec in setting_specs():
        if spec.section != current:
            current = spec.section
            lines += ["", f"### [{spec.section}]", "",
                      "| key | default | environment | meaning |", "|---|---|---|---|"]
        default = "(unset)" if spec.default is None else f"`{toml_value(spec.default)}`"
        env = f"`{spec.env_var}`" + (f", `{spec.env_var}_FILE`" if spec.secret else "")
        lines.append(f"| `{spec.key}` | {default} | {env} | {spec.help} |")
    return "\n".join(lines).strip() + "\n"
