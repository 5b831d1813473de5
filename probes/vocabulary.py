"""The closed vocabularies of a measurement: failure strings, blocking values and methods.

Written once here; documented in docs/outcomes.md; each value has a test that produces it.
"""

from __future__ import annotations

from typing import Final, Literal

# Failure strings follow OONI's netxlite classifier (df-007) so our data reads like theirs.
Failure = Literal[
    "dns_nxdomain_error",
    "dns_servfail_error",
    "dns_refused_error",
    "dns_no_answer",
    "dns_server_misbehaving",
    "generic_timeout_error",
    "connection_refused",
    "connection_reset",
    "host_unreachable",
    "network_unreachable",
    "eof_error",
    "ssl_unknown_authority",
    "ssl_invalid_hostname",
    "ssl_invalid_certificate",
    "ssl_failed_handshake",
    "http_invalid_response",
    "http_too_many_redirects",
    "unknown_failure",
]

FAILURES: Final[tuple[str, ...]] = Failure.__args__  # type: ignore[attr-defined]

# test_keys.blocking, as in OONI Web Connectivity; None means "could not tell".
Blocking = Literal[False, "dns", "tcp_ip", "http-failure", "http-diff"]

BlockingMethod = Literal[
    "dns.nxdomain",
    "dns.bogon",
    "dns.blockpage",
    "dns.inconsistent",
    "dns.timeout",
    "dns.servfail",
    "tcp.reset",
    "tcp.timeout",
    "tls.reset",
    "tls.timeout",
    "tls.mitm",
    "http.reset",
    "http.timeout",
    "http.blockpage",
    "http.diff",
    "tls.throttled",
    "http.throttled",
]

BLOCKING_METHODS: Final[tuple[str, ...]] = BlockingMethod.__args__  # type: ignore[attr-defined]

# The monitor's per (vantage, url) state machine.
TargetState = Literal["accessible", "anomaly", "blocked", "down", "unknown", "intermittent"]
TARGET_STATES: Final[tuple[str, ...]] = TargetState.__args__  # type: ignore[attr-defined]
