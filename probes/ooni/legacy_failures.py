"""OONI's pre-2020 failure strings (MK, ooniprobe 2.x) in today's vocabulary (df-007); pure."""

from __future__ import annotations

# Exact legacy strings -> the failure string today's probes write (and the analysis knows).
LEGACY_FAILURES: dict[str, str] = {
    # MK's catch-all for connect(): OONI's pipeline counts it as a refused/failed TCP connect.
    "connect_error": "connection_refused",
    "connection_refused_error": "connection_refused",
    "connection_reset_error": "connection_reset",
    "econnreset": "connection_reset",
    "connection_lost_error": "eof_error",
    "connection_done": "eof_error",
    # MK gave up waiting for the response: a timeout of the HTTP exchange.
    "response_never_received": "generic_timeout_error",
    "tcp_timed_out_error": "generic_timeout_error",
    "deferred_timeout_error": "generic_timeout_error",
    "generic_timeout_error": "generic_timeout_error",
    # The legacy control helper's word for NXDOMAIN.
    "dns_name_error": "dns_nxdomain_error",
    "dns_server_failure": "dns_servfail_error",
}


def modern_failure(failure: str | None) -> str | None:
    """Today's failure string for a legacy one; unknown strings pass unchanged."""
    if failure is None:
        return None
    if failure in LEGACY_FAILURES:
        return LEGACY_FAILURES[failure]
    if failure.startswith("ssl_error"):
        return _ssl_failure(failure.casefold())
    return failure


def _ssl_failure(text: str) -> str:
    # "ssl_error: error:14007086:SSL routines:CONNECT_CR_CERT:certificate verify failed"
    if "hostname" in text or "host name" in text:
        return "ssl_invalid_hostname"
    if "certificate verify failed" in text or "unknown ca" in text or "self signed" in text:
        return "ssl_unknown_authority"
    if "certificate" in text:
        return "ssl_invalid_certificate"
    if "reset" in text:
        return "connection_reset"
    return "ssl_failed_handshake"
