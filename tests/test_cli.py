"""The CLI shell: every registered subcommand loads and has help text."""

from click.testing import CliRunner

from monitor.cli import SUBCOMMANDS, cli


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert "blockmon" in result.output


def test_unknown_command_is_refused_with_its_name() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code != 0
    assert "no-such-command" in result.output


def test_every_registered_subcommand_has_help() -> None:
    runner = CliRunner()
    for name in SUBCOMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, f"blockmon {name} --help failed: {result.output}"
        assert len(result.output.strip()) > 40, f"blockmon {name} has no help text"
