"""`blockmon targets` import / list / show / validate, through click's runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from targets import load_registry
from tests.fixtures.targets import VALID_TARGET


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["targets", *args], env=env, catch_exceptions=False)


def test_list_shows_every_registry_target_and_marks_controls() -> None:
    result = run("list")
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:] if line.strip() and not line.startswith(" ")}
    registry = load_registry()
    for target in registry.targets:
        assert target.id in rows
        assert (f"{target.id} *" in rows[target.id]) == target.control
    assert f"{len(registry.targets)} targets ({len(registry.controls())} controls" in result.output
    assert "Internet censorship" in rows["fergana"]


def test_list_filters_by_category() -> None:
    result = run("list", "--category", "grp")
    ids = [line.split()[0] for line in result.output.splitlines()[1:] if line.strip() and not line[0].isdigit()]
    assert set(ids) == {t.id for t in load_registry().targets if t.category_code == "GRP"}
    assert "fergana" not in ids


def test_show_prints_lineage_and_quotation() -> None:
    result = run("show", "fergana")
    assert result.exit_code == 0
    assert "former   http://www.fergananews.com/" in result.output
    assert "current  https://fergana.media/" in result.output
    assert "Fergananews.com site" in result.output and "line 159" in result.output


def test_show_finds_a_target_by_url_and_refuses_an_unknown_id() -> None:
    assert run("show", "https://azattyq.gitlab.io").output.startswith("azattyq:")
    result = CliRunner().invoke(cli, ["targets", "show", "nope"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no target 'nope' in list 'briefing' (see `blockmon targets list`)"


def test_validate_passes_on_the_shipped_registry_with_quotations_checked() -> None:
    result = run("validate")
    assert result.exit_code == 0
    assert "quotations checked against" in result.output


def test_validate_reports_each_problem_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "mine.toml"
    broken.write_text(VALID_TARGET.replace('"NEWS"', '"NEWZ"').replace("line = 159", "line = 3"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["targets", "validate", str(broken)])
    assert result.exit_code == 1
    assert f"{broken}:5: target 'fergana': unknown category_code 'NEWZ'" in result.output
    assert "line 3 is wrong: the quote starts on line 159" in result.output
    assert "2 problem(s)" in result.output


def test_validate_with_an_explicit_briefing_and_a_missing_one(tmp_path: Path) -> None:
    briefing = tmp_path / "briefing.txt"
    briefing.write_text("Internet censorship\n\nSomething else entirely.\n", encoding="utf-8")
    registry = tmp_path / "mine.toml"
    registry.write_text(VALID_TARGET, encoding="utf-8")
    result = CliRunner().invoke(cli, ["targets", "validate", str(registry), "--briefing", str(briefing)])
    assert result.exit_code == 1 and "quote not found in the briefing" in result.output
    result = CliRunner().invoke(cli, ["targets", "validate", str(registry), "--briefing", str(tmp_path / "none.txt")])
    assert result.exit_code == 1 and "--briefing: no such file" in result.output


def test_import_saves_a_named_list_that_list_and_show_read(write_csv: Callable[..., Path], tmp_path: Path) -> None:
    path = write_csv("https://example.org/,NEWS,News Media,2019-05-25,x,\nhttps://example.net/,CTRL,Control,2019-05-25,x,\n", name="mine.csv")
    lists = tmp_path / "lists"
    result = run("import", str(path), "--lists-dir", str(lists))
    assert result.exit_code == 0 and "imported 2 targets (1 controls)" in result.output
    assert (lists / "mine.toml").is_file()
    listing = run("list", "--list", "mine", "--lists-dir", str(lists))
    assert "example-org" in listing.output and "example-net *" in listing.output
    assert "https://example.net/" in run("show", "example-net", "--list", "mine", "--lists-dir", str(lists)).output


def test_import_uses_the_data_dir_from_the_environment(write_csv: Callable[..., Path], tmp_path: Path) -> None:
    path = write_csv("https://example.org/,NEWS,News Media,2019-05-25,x,\n")
    result = run("import", str(path), "--name", "envlist", env={"BLOCKMON_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 0
    assert (tmp_path / "data" / "lists" / "envlist.toml").is_file()


@pytest.mark.parametrize(
    "body",
    [
        b"https://a.org/,NEWS,News,2019-01-01,x,\nhttps://b.org/,NEWZ,News,2019-01-01,x,\n",
        b"https://a.org/,NEWS,News,2019-01-01,x,\nhttps://b.org/,NEWS,News,2019-01-01,x,caf\xe9\n",
    ],
)
def test_a_failed_import_saves_nothing_and_keeps_the_old_list(
    body: bytes, write_csv: Callable[..., Path], tmp_path: Path
) -> None:
    lists = tmp_path / "lists"
    good = write_csv("https://old.org/,NEWS,News,2019-01-01,x,\n", name="good.csv")
    assert run("import", str(good), "--name", "mine", "--lists-dir", str(lists)).exit_code == 0
    before = (lists / "mine.toml").read_bytes()
    bad = write_csv(body, name="bad.csv")
    result = CliRunner().invoke(cli, ["targets", "import", str(bad), "--name", "mine", "--lists-dir", str(lists)])
    assert result.exit_code == 1
    assert f"{bad}: row 3:" in result.output and len(result.output.strip().splitlines()) == 1
    assert (lists / "mine.toml").read_bytes() == before
    assert sorted(p.name for p in lists.iterdir()) == ["mine.toml"]


def test_import_refuses_the_registry_name(write_csv: Callable[..., Path], tmp_path: Path) -> None:
    path = write_csv("https://a.org/,NEWS,News,2019-01-01,x,\n")
    result = CliRunner().invoke(cli, ["targets", "import", str(path), "--name", "briefing", "--lists-dir", str(tmp_path)])
    assert result.exit_code == 1 and "shipped registry" in result.output


def test_validate_checks_a_csv_test_list(citizenlab_list: Callable[[str], Path]) -> None:
    result = run("validate", str(citizenlab_list("kz")))
    assert result.exit_code == 0 and result.output.startswith("ok: ")


DOCS = Path(__file__).resolve().parent.parent / "docs" / "targets.md"


def test_docs_describe_every_command_and_key_and_paste_the_current_listing() -> None:
    from monitor.commands.targets import targets as group
    from targets.registry import BRIEFING_KEYS, LIST_KEYS, TARGET_KEYS, URL_KEYS

    text = DOCS.read_text(encoding="utf-8")
    for command in group.commands:
        assert f"blockmon targets {command}" in text, f"command {command} is undocumented"
    for key in LIST_KEYS | TARGET_KEYS | URL_KEYS | BRIEFING_KEYS:
        assert f"`{key}`" in text, f"key {key} is undocumented"
    assert run("list").output.strip() in text, "docs/targets.md does not show the current `targets list` output"
