"""`python -m monitor.settings`: prints the reference tables to paste into docs/settings.md."""

from monitor.settings.render import render_settings_table

print(render_settings_table(), end="")
