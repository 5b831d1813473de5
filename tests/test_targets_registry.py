"""The shipped registry: it validates, its quotations are the briefing's, its lineage is complete."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from targets import find_target, load_list, load_registry
from targets.briefing import BriefingText
from targets.categories import is_known_category
from targets.model import CLAIM_KINDS, URL_ROLES, Target
from targets.registry import DEFAULT_REGISTRY_PATH, check_registry_text

REGISTRY = load_registry()
WITH_CLAIMS = [target for target in REGISTRY.targets if target.briefing is not None]

# The sites the briefing's "Internet censorship" section names, with the domain of each.
INTERNET_CENSORSHIP_SITES = {
    "Eurasianet.org": "eurasianet.org",
    "Radio Free Europe/Radio Liberty": "www.rferl.org",
    "Today.kz": "today.kz",
    "Fergananews.com": "www.fergananews.com",
}


def test_shipped_registry_has_no_problems_even_against_the_briefing(briefing_text: BriefingText) -> None:
    text = DEFAULT_REGISTRY_PATH.read_text(encoding="utf-8")
    target_list, problems = check_registry_text(text, str(DEFAULT_REGISTRY_PATH), briefing_text)
    assert [str(problem) for problem in problems] == []
    assert target_list == REGISTRY


def test_registry_is_the_briefing_list_and_load_list_finds_it() -> None:
    assert REGISTRY.name == "briefing"
    assert all(target.list_name == "briefing" for target in REGISTRY.targets)
    assert load_list("briefing") == REGISTRY


@pytest.mark.parametrize("target", WITH_CLAIMS, ids=lambda target: target.id)
def test_every_quotation_is_verbatim_in_the_briefing_at_its_line(target: Target, briefing_text: BriefingText) -> None:
    claim = target.briefing
    assert claim is not None
    assert claim.line in briefing_text.quote_lines(claim.quote), claim.quote
    assert any(line < claim.line for line in briefing_text.section_lines(claim.section)), claim.section
    assert claim.claim in CLAIM_KINDS


def test_every_non_control_target_carries_a_briefing_claim_and_controls_none() -> None:
    for target in REGISTRY.targets:
        assert (target.briefing is None) == target.control, target.id
    assert len(REGISTRY.controls()) >= 3


@pytest.mark.parametrize("name", sorted(INTERNET_CENSORSHIP_SITES))
def test_targets_list_covers_every_site_of_the_internet_censorship_section(
    name: str, briefing_text: BriefingText
) -> None:
    section_start = briefing_text.section_lines("Internet censorship")[0]
    assert any(line > section_start for line in briefing_text.quote_lines(name)), f"{name} not in the section"
    target = find_target(REGISTRY, f"http://{INTERNET_CENSORSHIP_SITES[name]}/") or find_target(
        REGISTRY, f"https://{INTERNET_CENSORSHIP_SITES[name]}/"
    )
    assert target is not None, f"no target measures {INTERNET_CENSORSHIP_SITES[name]}"
    assert target.briefing is not None and target.briefing.section == "Internet censorship"
    listing = CliRunner().invoke(cli, ["targets", "list"])
    assert listing.exit_code == 0
    assert any(row.split()[0] == target.id for row in listing.output.splitlines() if row.strip())


def test_the_kazakh_service_and_the_social_networks_are_covered() -> None:
    azattyq = find_target(REGISTRY, "azattyq")
    assert azattyq is not None
    assert {"https://www.azattyq.org/", "https://rus.azattyq.org/"} <= set(azattyq.url_list())
    assert {u.url for u in azattyq.urls_with_role("mirror")} == {
        "https://azattyq.gitlab.io/", "https://azattyq.github.io/",
    }
    facebook = find_target(REGISTRY, "https://www.facebook.com")
    assert facebook is not None and facebook.briefing is not None
    assert facebook.briefing.claim == "blocking_threatened"


def test_fergana_lineage_has_the_former_domain_and_every_new_one() -> None:
    fergana = find_target(REGISTRY, "fergana")
    assert fergana is not None
    assert [u.url for u in fergana.urls_with_role("former")] == ["http://www.fergananews.com/"]
    assert {u.url for u in fergana.urls_with_role("current")} == {
        "https://fergana.agency/", "https://fergana.news/", "https://fergana.media/",
    }
    assert fergana.briefing is not None and fergana.briefing.claim == "site_blocked"


def test_outlets_ngos_and_parties_of_the_briefing_are_targets() -> None:
    for target_id in ("adam-bol", "assandi-times", "pravdivaya-gazeta", "adil-soz", "kibhr", "alga", "communist-party"):
        assert find_target(REGISTRY, target_id) is not None, target_id


def test_targets_without_a_url_say_why_and_fields_use_the_vocabularies() -> None:
    for target in REGISTRY.targets:
        assert target.urls or target.notes, target.id
        assert is_known_category(target.category_code), target.id
        assert all(url.role in URL_ROLES for url in target.urls), target.id


def test_find_target_by_id_by_url_without_slash_and_none_when_unknown() -> None:
    assert find_target(REGISTRY, "today-kz") is not None
    found = find_target(REGISTRY, "https://fergana.news")
    assert found is not None and found.id == "fergana"
    assert find_target(REGISTRY, "https://not-a-target.example/") is None
    assert find_target(REGISTRY, "no-such-id") is None
