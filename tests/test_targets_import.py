"""Citizen Lab test-list import: the real lists import whole; a bad row rejects the whole file."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from targets import TargetFileError, import_citizenlab_csv, load_list, save_list
from targets.model import TargetList


def csv_row_count(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


@pytest.mark.parametrize("name", ["kz", "global"])
def test_the_citizenlab_lists_import_every_row_and_round_trip(
    name: str, citizenlab_list: Callable[[str], Path], tmp_path: Path
) -> None:
    path = citizenlab_list(name)
    imported = import_citizenlab_csv(path, name)
    assert len(imported.targets) == csv_row_count(path)
    assert len({target.id for target in imported.targets}) == len(imported.targets)
    with path.open(encoding="utf-8", newline="") as handle:
        first = next(csv.DictReader(handle))
    assert imported.targets[0].url_list() == [first["url"]]
    assert imported.targets[0].category_code == first["category_code"]
    saved = save_list(imported, tmp_path / "lists", source=str(path))
    assert saved == tmp_path / "lists" / f"{name}.toml"
    assert load_list(name, tmp_path / "lists") == imported


def test_kz_list_carries_the_briefing_domains(citizenlab_list: Callable[[str], Path]) -> None:
    imported = import_citizenlab_csv(citizenlab_list("kz"), "kz")
    urls = {url for target in imported.targets for url in target.url_list()}
    assert {"https://eurasianet.org/", "https://fergana.media/", "https://adilsoz.kz/"} <= urls


def test_rows_become_targets_with_roles_controls_and_provenance(write_csv: Callable[..., Path]) -> None:
    path = write_csv(
        "https://example.org/,NEWS,News Media,2019-05-25,Netalitica,\"a note, with a comma\"\n"
        "https://example.org/a/story?id=1,NEWS,News Media,2020-01-01,x,\n"
        "http://clients3.google.com/generate_204,CTRL,Control content,2021-06-29,y,\n"
        "http://example.org/,FEXP,Freedom of expression,2014-04-15,citizenlab,\n"
    )
    imported = import_citizenlab_csv(path, "mine")
    assert [t.id for t in imported.targets] == ["example-org", "example-org-a-story", "clients3-google-com-generate-204", "example-org-2"]
    assert [t.urls[0].role for t in imported.targets] == ["home", "content", "content", "home"]
    assert [t.control for t in imported.targets] == [False, False, True, False]
    assert imported.targets[0].notes is not None and "a note, with a comma" in imported.targets[0].notes
    assert "added 2019-05-25" in imported.targets[0].notes
    assert all(t.list_name == "mine" for t in imported.targets)


@pytest.mark.parametrize(
    ("body", "row", "fragment"),
    [
        ("https://ok.org/,NEWS,News,2019-01-01,x,\nnot a url,NEWS,News,2019-01-01,x,\n", 3, "url: URL contains whitespace: 'not a url'"),
        ("https://ok.org/,NEWS,News,2019-01-01,x,\nftp://files.org/,NEWS,News,2019-01-01,x,\n", 3, "url: URL scheme must be http or https: 'ftp://files.org/'"),
        ("https://ok.org/,NEWS,News,2019-01-01,x,\nhttps://b.org/,NEWZ,News,2019-01-01,x,\n", 3, "category_code: unknown category code 'NEWZ'"),
        ("https://ok.org/,NEWS,News,2019-01-01,x,\nhttps://b.org/,NEWS,News,2019-01-01\n", 3, "4 fields, expected 6"),
        ("https://ok.org/,NEWS,News,2019-01-01,x,\nhttps://b.org/,NEWS,News,15.04.2014,x,\n", 3, "date_added: date must be"),
        ("https://ok.org/,NEWS,News,2019-01-01,x,\nhttps://ok.org/,NEWS,News,2019-01-01,x,\n", 3, "duplicate URL 'https://ok.org/' (first on row 2)"),
        ("https://ok.org/,NEWS,News,2019-01-01,x,\n\"https://b.org/,NEWS,News,2019-01-01,x,\n", 3, "malformed CSV"),
    ],
)
def test_a_bad_row_is_named_with_its_number_and_value(
    body: str, row: int, fragment: str, write_csv: Callable[..., Path]
) -> None:
    path = write_csv(body)
    with pytest.raises(TargetFileError) as caught:
        import_citizenlab_csv(path, "mine")
    assert caught.value.row == row
    message = str(caught.value)
    assert message.startswith(f"{path}: row {row}: ") and fragment in message
    assert "\n" not in message


def test_missing_column_is_named(write_csv: Callable[..., Path]) -> None:
    path = write_csv("https://ok.org/,NEWS,News,2019-01-01,x\n", header="url,category_code,category_description,date_added,source\n")
    with pytest.raises(TargetFileError, match=r"row 1: header: missing column 'notes'") as caught:
        import_citizenlab_csv(path, "mine")
    assert caught.value.key == "notes"


def test_latin1_bytes_are_refused_with_their_row(write_csv: Callable[..., Path]) -> None:
    path = write_csv("https://ok.org/,NEWS,News,2019-01-01,x,\nhttps://b.org/,NEWS,News,2019-01-01,x,caf\xe9 in Almaty\n".encode("latin-1"))
    with pytest.raises(TargetFileError, match=r"row 3: not valid UTF-8: byte e9") as caught:
        import_citizenlab_csv(path, "mine")
    assert caught.value.value == b"\xe9"


def test_empty_file_and_missing_file_are_one_line_errors(write_csv: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(TargetFileError, match="empty file"):
        import_citizenlab_csv(write_csv("", header=None), "mine")
    with pytest.raises(TargetFileError, match="no such test-list file"):
        import_citizenlab_csv(tmp_path / "absent.csv", "mine")


def test_save_replaces_atomically_and_leaves_no_temporary_file(write_csv: Callable[..., Path], tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    first = import_citizenlab_csv(write_csv("https://a.org/,NEWS,News,2019-01-01,x,\n"), "mine")
    second = import_citizenlab_csv(write_csv("https://b.org/,NEWS,News,2019-01-01,x,\n", name="b.csv"), "mine")
    save_list(first, lists)
    save_list(second, lists)
    assert sorted(path.name for path in lists.iterdir()) == ["mine.toml"]
    assert load_list("mine", lists).targets[0].url_list() == ["https://b.org/"]


def test_save_refuses_the_registry_name_and_load_names_the_known_lists(tmp_path: Path) -> None:
    with pytest.raises(TargetFileError, match="shipped registry"):
        save_list(TargetList("briefing", ()), tmp_path)
    save_list(TargetList("mine", ()), tmp_path)
    with pytest.raises(TargetFileError, match=r"no target list named 'theirs' \(known: briefing, mine\)"):
        load_list("theirs", tmp_path)


def test_strings_with_quotes_backslashes_and_control_characters_survive_saving(tmp_path: Path, write_csv: Callable[..., Path]) -> None:
    path = write_csv('https://a.org/,NEWS,News,2019-01-01,x,"say ""hi"" \\ tab\there \x7f Қазақ"\n')
    imported = import_citizenlab_csv(path, "odd")
    save_list(imported, tmp_path)
    assert load_list("odd", tmp_path) == imported
