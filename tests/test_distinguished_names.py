"""parse_distinguished_name's fast path (no escapes) reads names exactly as the escape-aware loop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from probes.fingerprints_match import parse_distinguished_name


def parse_char_by_char(text: str | None) -> dict[str, list[str]]:
    # The reader as it was before the fast path: the oracle.
    attributes: dict[str, list[str]] = {}
    if not text:
        return attributes
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",+":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    for part in parts:
        key, separator, value = part.partition("=")
        if separator:
            attributes.setdefault(key.strip().upper(), []).append(value.strip())
    return attributes


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("CNOU= ,+\\abcКЗ.-*")), max_size=40))
def test_any_name_is_read_as_before(text: str) -> None:
    assert parse_distinguished_name(text) == parse_char_by_char(text)


def test_names_of_the_lab_and_of_interception_certificates() -> None:
    for text in ("CN=site1.bulk.lab.test", "CN=blockmon lab root CA,O=blockmon lab",
                 "CN=a\\,b,O=X,C=KZ", "CN=x+OU=y,O=Z", None, "", "O=Kazakhtelecom JSC,CN=Security Certificate"):
        assert parse_distinguished_name(text) == parse_char_by_char(text)
    assert parse_distinguished_name("CN=a\\,b,O=X,C=KZ") == {"CN": ["a,b"], "O": ["X"], "C": ["KZ"]}
    assert parse_distinguished_name("CN=x+OU=y,O=Z") == {"CN": ["x"], "OU": ["y"], "O": ["Z"]}
