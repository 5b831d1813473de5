"""`blockmon init`: writes a commented settings file with every key and its default."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.settings import DEFAULT_CONFIG_NAME, render_default_config


@click.command()
@click.option("--path", "path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_CONFIG_NAME, show_default=True, help="Where to write the file.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a commented blockmon.toml to edit (every key shown with its default)."""
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_default_config(), encoding="utf-8")
    except OSError as error:
        raise click.ClickException(f"{path}: cannot write: {error.strerror}") from None
    click.echo(f"wrote {path}; set [probe] vantage_id, cc and asn, and [probe] helper_url (the "
               "control helper: without it every round is degraded, its verdicts guesses); "
               "check with `blockmon doctor`, then run `blockmon run`")
