"""Each registry validation rule produces its error, naming file, line and offending value."""

from __future__ import annotations

from pathlib import Path

import pytest

from targets import TargetFileError, load_registry
from targets.briefing import BriefingText, build_briefing_text
from targets.registry import check_registry_text, parse_registry_text
from tests.fixtures.targets import VALID_TARGET

FILE = "reg.toml"


def problems_of(text: str, briefing: BriefingText | None = None) -> list[TargetFileError]:
    return check_registry_text(text, FILE, briefing)[1]


def only_problem(text: str, briefing: BriefingText | None = None) -> TargetFileError:
    problems = problems_of(text, briefing)
    assert len(problems) == 1, [str(problem) for problem in problems]
    return problems[0]


def line_of(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), start=1) if fragment in line)


def test_the_valid_example_is_valid_against_the_briefing(briefing_text: BriefingText) -> None:
    assert problems_of(VALID_TARGET, briefing_text) == []
    target = parse_registry_text(VALID_TARGET, FILE).targets[0]
    assert target.url_list() == ["https://fergana.media/"]
    assert target.urls[0].since == "2021"


def test_invalid_toml_names_its_line() -> None:
    text = VALID_TARGET.replace('name = "Fergana"', 'name = "Fergana')
    problem = only_problem(text)
    assert problem.line == line_of(text, 'name = "Fergana')
    assert str(problem).startswith(f"{FILE}:{problem.line}: invalid TOML")


@pytest.mark.parametrize(
    ("after", "key"),
    [('category_code = "NEWS"', "homepage"), ('role = "current"', "mirror_of"), ('claim = "site_blocked"', "source")],
)
def test_unknown_keys_are_named_with_their_line(after: str, key: str) -> None:
    text = VALID_TARGET.replace(after, f'{after}\n{key} = "x"')
    problem = only_problem(text)
    assert problem.key == key and problem.value == key
    assert problem.line == line_of(text, f'{key} = "x"')
    assert f"unknown key {key!r}" in str(problem)


def test_unknown_top_level_key() -> None:
    problem = only_problem('title = "mine"\n' + VALID_TARGET)
    assert problem.line == 1 and "unknown key 'title'" in str(problem)


def test_missing_id() -> None:
    text = VALID_TARGET.replace('id = "fergana"\n', "")
    problem = only_problem(text)
    assert "missing required key 'id'" in str(problem)
    assert problem.line == line_of(text, "[[target]]")


def test_id_must_be_a_slug() -> None:
    problem = only_problem(VALID_TARGET.replace('id = "fergana"', 'id = "Fergana News"'))
    assert problem.value == "Fergana News" and "slug" in str(problem)


def test_duplicate_ids_name_both_lines() -> None:
    second = VALID_TARGET.replace("https://fergana.media/", "https://fergana.news/")
    text = VALID_TARGET + second
    problem = only_problem(text)
    assert "duplicate id 'fergana'" in str(problem)
    first_line = line_of(text, 'id = "fergana"')
    assert f"first at line {first_line}" in str(problem)
    assert problem.line is not None and problem.line > first_line


def test_duplicate_urls_across_targets_even_without_the_trailing_slash() -> None:
    second = VALID_TARGET.replace('id = "fergana"', 'id = "fergana-copy"').replace(
        "https://fergana.media/", "https://FERGANA.media"
    )
    problem = only_problem(VALID_TARGET + second)
    assert "duplicate URL 'https://FERGANA.media'" in str(problem)
    assert "already in target 'fergana'" in str(problem)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://fergana.media/", "scheme must be http or https"),
        ("fergana.media", "scheme must be http or https"),
        ("https:///path", "no host"),
        ("https://fer gana.media/", "whitespace"),
        ("https://fergana.media:99999/", "malformed"),
        ("https://bad_host!.media/", "not a valid hostname"),
    ],
)
def test_urls_must_be_http_or_https_with_a_host(url: str, reason: str) -> None:
    text = VALID_TARGET.replace("https://fergana.media/", url)
    problem = only_problem(text)
    assert reason in str(problem) and problem.value == url
    assert problem.line == line_of(text, "url = ")


def test_unknown_category_code() -> None:
    problem = only_problem(VALID_TARGET.replace('"NEWS"', '"NEWZ"'))
    assert "unknown category_code 'NEWZ'" in str(problem) and problem.key == "category_code"


def test_legacy_category_codes_are_accepted() -> None:
    assert problems_of(VALID_TARGET.replace('"NEWS"', '"FEXP"')) == []


def test_unknown_role_and_unknown_claim() -> None:
    role = only_problem(VALID_TARGET.replace('role = "current"', 'role = "latest"'))
    assert "unknown role 'latest'" in str(role)
    claim = only_problem(VALID_TARGET.replace('claim = "site_blocked"', 'claim = "blocked"'))
    assert "unknown claim 'blocked'" in str(claim)


@pytest.mark.parametrize(("old", "new"), [('since = "2021"', 'since = "2021-13"'), ('since = "2021"', 'since = "last year"'),
                                          ('period = "2014/2015-04"', 'period = "2014/"')])
def test_dates_and_periods_are_checked(old: str, new: str) -> None:
    problem = only_problem(VALID_TARGET.replace(old, new))
    assert problem.value == new.split(" = ")[1].strip('"')


@pytest.mark.parametrize(("old", "new", "key"), [
    ('since = "2021"', 'since = "2021"\nuntil = "2020-12"', "until"),
    ('period = "2014/2015-04"', 'period = "2015-04/2014"', "period"),
])
def test_dates_that_end_before_they_start_are_refused(old: str, new: str, key: str) -> None:
    problem = only_problem(VALID_TARGET.replace(old, new))
    assert problem.key == key and "before" in str(problem)


def test_dates_of_other_precision_in_order_are_fine() -> None:
    for old, new in (('since = "2021"', 'since = "2021-03"\nuntil = "2021"'),
                     ('period = "2014/2015-04"', 'period = "2014-06/2014"')):
        assert problems_of(VALID_TARGET.replace(old, new)) == []


def test_control_must_be_a_boolean() -> None:
    problem = only_problem(VALID_TARGET.replace('category_code = "NEWS"', 'category_code = "NEWS"\ncontrol = "yes"'))
    assert "control must be true or false" in str(problem)


def test_a_target_without_urls_needs_notes() -> None:
    text = VALID_TARGET.replace('[[target.url]]\nurl = "https://fergana.media/"\nrole = "current"\nsince = "2021"\n', "")
    assert "no URL and no notes" in str(only_problem(text))
    assert problems_of(text.replace('category_code = "NEWS"', 'category_code = "NEWS"\nnotes = "domain unknown"')) == []


def test_wrong_types_are_named() -> None:
    problem = only_problem(VALID_TARGET.replace("line = 159", 'line = "159"'))
    assert "line must be a positive integer" in str(problem)


def test_quote_not_in_the_briefing(briefing_text: BriefingText) -> None:
    text = VALID_TARGET.replace("Fergananews.com site", "Fergana.news site")
    problem = only_problem(text, briefing_text)
    assert "quote not found in the briefing" in str(problem)
    assert problem.line == line_of(text, "quote = ")


def test_quote_at_another_line_gives_the_right_one(briefing_text: BriefingText) -> None:
    problem = only_problem(VALID_TARGET.replace("line = 159", "line = 150"), briefing_text)
    assert "line 150 is wrong: the quote starts on line 159" in str(problem)


def test_section_must_be_a_heading_of_the_briefing(briefing_text: BriefingText) -> None:
    problem = only_problem(VALID_TARGET.replace('"Internet censorship"', '"Internet blocking"'), briefing_text)
    assert "section 'Internet blocking' is not a heading" in str(problem)


def test_section_must_come_before_the_quote(briefing_text: BriefingText) -> None:
    problem = only_problem(VALID_TARGET.replace('"Internet censorship"', '"Freedom of association and assembly"'), briefing_text)
    assert "comes before section" in str(problem)


def test_quotes_must_stay_short() -> None:
    text = VALID_TARGET.replace("in the same part of the country.", "in the same part of the country." + " More." * 60)
    assert "keep it to one or two sentences" in str(only_problem(text))


def test_matching_ignores_line_breaks_and_rejoins_hyphenated_words() -> None:
    briefing = build_briefing_text("Intro\n\nfirst line ends in Kiev-\n\nbased   opposition\n figure said so.\n")
    assert briefing.quote_lines("Kiev-based opposition figure said") == [3]
    assert briefing.quote_lines("opposition figure\n said so.") == [5]
    assert briefing.quote_lines("Kiev- based") == []
    assert briefing.section_lines(" Intro ") == (1,)


def test_errors_are_one_line_and_all_are_collected() -> None:
    text = VALID_TARGET.replace('"NEWS"', '"NEWZ"').replace('role = "current"', 'role = "latest"')
    problems = problems_of(text)
    assert len(problems) == 2
    assert all("\n" not in str(problem) and str(problem).startswith(f"{FILE}:") for problem in problems)


def test_load_registry_raises_the_first_problem_and_names_a_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(VALID_TARGET.replace('"NEWS"', '"NEWZ"'), encoding="utf-8")
    with pytest.raises(TargetFileError, match=r"broken\.toml:\d+: .*NEWZ"):
        load_registry(broken)
    with pytest.raises(TargetFileError, match="no such target file"):
        load_registry(tmp_path / "absent.toml")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'# caf\xe9\n')
    with pytest.raises(TargetFileError, match=r"latin1\.toml:1: not valid UTF-8"):
        load_registry(latin1)
