"""parse_distinguished_name's fast path (no escapes) splits names as the escape-aware reader does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from probes.fingerprints_match import _dn_parts, _dn_parts_escaped, parse_distinguished_name


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("CNOU= ,+\\abcКЗ.-*")), max_size=40))
def test_any_name_is_split_as_the_escape_aware_reader_splits_it(text: str) -> None:
    assert _dn_parts(text) == _dn_parts_escaped(text)


def test_names_of_the_lab_and_of_interception_certificates() -> None:
    for text in ("CN=site1.bulk.lab.test", "CN=blockmon lab root CA,O=blockmon lab", "CN=x+OU=y,O=Z",
                 "O=Kazakhtelecom JSC,CN=Security Certificate", ""):
        assert _dn_parts(text) == _dn_parts_escaped(text)
    assert parse_distinguished_name("CN=a\\,b,O=X,C=KZ") == {"CN": ["a,b"], "O": ["X"], "C": ["KZ"]}
    assert parse_distinguished_name("CN=x+OU=y,O=Z") == {"CN": ["x"], "OU": ["y"], "O": ["Z"]}
    assert parse_distinguished_name("CN=site1.bulk.lab.test") == {"CN": ["site1.bulk.lab.test"]}
    assert parse_distinguished_name(None) == {} and parse_distinguished_name("") == {}
