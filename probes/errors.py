"""The one classifier that turns expected network exceptions into failure strings."""

from __future__ import annotations

import asyncio
import errno
import ssl

import aiohttp
import dns.exception
import dns.message
import dns.query
import dns.resolver
import h11

from probes.vocabulary import Failure


class InvalidInput(ValueError):
    """A URL, resolver or address given by the user that cannot be measured; the message names it."""


# What a probe step may catch and hand to classify_failure; anything else is a bug and raises.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    EOFError,
    asyncio.IncompleteReadError,
    ssl.SSLError,
    h11.RemoteProtocolError,
    dns.exception.DNSException,
    aiohttp.ClientError,
)

# OpenSSL X509_V_ERR_* codes that mean "the chain does not lead to a trusted root" (OONI df-007).
_UNKNOWN_AUTHORITY_CODES = frozenset({18, 19, 20, 21})
# X509_V_ERR_HOSTNAME_MISMATCH, and X509_V_ERR_IP_ADDRESS_MISMATCH for https://IP/ URLs.
_HOSTNAME_MISMATCH_CODES = frozenset({62, 64})

_ERRNO_FAILURES: dict[int, Failure] = {
    errno.ECONNREFUSED: "connection_refused",
    errno.ECONNRESET: "connection_reset",
    # A peer that aborts or resets while we write shows up as EPIPE/ECONNABORTED; same evidence.
    errno.ECONNABORTED: "connection_reset",
    errno.EPIPE: "connection_reset",
    errno.EHOSTUNREACH: "host_unreachable",
    errno.ENETUNREACH: "network_unreachable",
    errno.ETIMEDOUT: "generic_timeout_error",
}


def classify_failure(exc: BaseException) -> Failure:
    """Map an expected network exception to its failure string; re-raise anything else.

    Order matters: several classes sit under more than one branch (ssl.SSLError is an OSError,
    dns.exception.Timeout is a DNSException, aiohttp's connector errors are OSErrors).
    """
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | dns.exception.Timeout):
        return "generic_timeout_error"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _classify_certificate_error(exc)
    if isinstance(exc, ssl.SSLZeroReturnError | ssl.SSLEOFError):
        return "eof_error"
    if isinstance(exc, ssl.SSLError):
        return _classify_ssl_error(exc)
    if isinstance(exc, dns.exception.DNSException):
        return _classify_dns_error(exc)
    if isinstance(exc, h11.RemoteProtocolError):
        return "http_invalid_response"
    if isinstance(exc, EOFError | asyncio.IncompleteReadError):
        return "eof_error"
    if isinstance(exc, aiohttp.ClientError) and not isinstance(exc, OSError):
        return _classify_aiohttp_error(exc)
    if isinstance(exc, ConnectionResetError) and exc.errno is None:
        # asyncio's TLS layer reports a peer's FIN mid-handshake as a bare ConnectionResetError();
        # a real RST carries errno ECONNRESET.
        return "eof_error"
    if isinstance(exc, OSError):
        # aiohttp wraps the socket error; the errno is copied onto the wrapper.
        return _ERRNO_FAILURES.get(exc.errno or 0, "unknown_failure")
    raise exc


def _classify_certificate_error(exc: ssl.SSLCertVerificationError) -> Failure:
    if exc.verify_code in _UNKNOWN_AUTHORITY_CODES:
        return "ssl_unknown_authority"
    if exc.verify_code in _HOSTNAME_MISMATCH_CODES:
        return "ssl_invalid_hostname"
    return "ssl_invalid_certificate"


def _classify_ssl_error(exc: ssl.SSLError) -> Failure:
    # OpenSSL sometimes reports a reset or an early close inside an SSLError's reason text.
    reason = (exc.reason or "").upper()
    if "UNEXPECTED_EOF" in reason:
        return "eof_error"
    if exc.errno == errno.ECONNRESET or "CONNECTION_RESET" in reason:
        return "connection_reset"
    return "ssl_failed_handshake"


def _classify_dns_error(exc: dns.exception.DNSException) -> Failure:
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return "dns_nxdomain_error"
    if isinstance(exc, dns.resolver.NoAnswer):
        return "dns_no_answer"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "dns_servfail_error"
    return "dns_server_misbehaving"


def _classify_aiohttp_error(exc: aiohttp.ClientError) -> Failure:
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "eof_error"
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ContentTypeError):
        return "http_invalid_response"
    return "unknown_failure"
