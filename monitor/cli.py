"""The `blockmon` command: a thin click group that imports each subcommand only when it runs."""

from __future__ import annotations

import asyncio
import importlib
import os

import click

from probes import __version__

# name -> "module:attribute"; each module lives in monitor/commands/ and owns one command.
SUBCOMMANDS: dict[str, str] = {
    "measure": "monitor.commands.measure:measure",
    "helper": "monitor.commands.helper:helper",
    "lab": "lab.cli:lab",
    "targets": "monitor.commands.targets:targets",
    "init": "monitor.commands.init:init",
    "run": "monitor.commands.run:run",
    "status": "monitor.commands.status:status",
    "history": "monitor.commands.history:history",
    "show": "monitor.commands.show:show",
    "export": "monitor.commands.export:export",
    "demo": "monitor.commands.demo:demo",
    "collector": "monitor.commands.collector:collector",
    "report": "monitor.commands.report:report",
    "serve": "monitor.commands.serve:serve",
    "alerts": "monitor.commands.alerts:alerts",
    "doctor": "monitor.commands.doctor:doctor",
    "ooni": "monitor.commands.ooni:ooni",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                return None
            raise
        command: click.Command = getattr(module, attribute)
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as error:
            # Imported here: the group stays light, and only a failing command pays for it.
            from monitor.store import damaged_database_message, is_damaged_database
            if not is_damaged_database(error):
                raise
            raise click.ClickException(damaged_database_message(_database_name(ctx),
                                                                error)) from None


def _database_name(ctx: click.Context) -> str:
    """The database the settings name, for a message about it (its URL without a password)."""
    # Imported here: only a damaged database needs the settings again.
    from monitor.settings import SettingsError, load_settings
    from monitor.store.database import DatabaseUrl
    try:
        url = load_settings((ctx.obj or {}).get("config_path")).storage.database_url
        return DatabaseUrl.parse(url).describe()
    except (SettingsError, ValueError):
        return "the database"


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="blockmon")
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    envvar="BLOCKMON_CONFIG",
    help="TOML settings file (default: ./blockmon.toml if present). Env: BLOCKMON_CONFIG.",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """blockmon: measure, store, report and alert on internet blocking."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config


# Set to "asyncio" to keep the standard event loop although uvloop is installed.
EVENT_LOOP_ENV = "BLOCKMON_EVENT_LOOP"


def choose_event_loop() -> str:
    """uvloop when installed (the `fast` extra) and not refused by BLOCKMON_EVENT_LOOP=asyncio.

    Measured in docs/benchmarks.md: less probe CPU and memory, failure strings unchanged.
    """
    if os.environ.get(EVENT_LOOP_ENV, "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: PLC0415 - optional dependency, imported only to install it
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def main() -> None:
    choose_event_loop()
    cli(obj={})
