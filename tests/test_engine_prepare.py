"""The engine's one-off work happens before a round, not on its first Russian page."""

from __future__ import annotations

from probes.fingerprints_load import default_fingerprints
from probes.fingerprints_match import match_http_blockpage
from probes.measure import prepare
from probes.options import ProbeIdentity, ProbeOptions
from probes.pattern_hints import odd_characters


def test_prepare_works_out_the_tables_a_page_that_is_not_ascii_needs() -> None:
    prepare(ProbeOptions(identity=ProbeIdentity(probe_cc="KZ", vantage_id="test")))
    misses = odd_characters.cache_info().misses
    page = "<html><title>Новости</title><p>Доступ к сайту открыт, читайте новости региона.</p></html>"
    assert match_http_blockpage(default_fingerprints(), page, None, "Новости") is None
    # The first non-ASCII page found its tables made: no new (slow) computation.
    assert odd_characters.cache_info().misses == misses
