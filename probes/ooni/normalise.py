"""One OONI Web Connectivity measurement (MK/<=0.3, 0.4.x, 0.5) as blockmon's analysis reads it; pure.

What changes (docs/ooni.md): legacy failure strings mapped; base64 bodies and headers decoded;
certificates described from `peer_certificates`; v0.5's public UDP/DoH resolvers moved out of
`queries` (into `x_public_queries`) when the system resolver's own answers are there; v0.5's
`depth=N` tags become `x_redirect_hop`; a redirect hop that failed before its HTTP exchange (v0.5
records no request for it) gets the failed request it stands for. The input is never modified.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from probes.analysis_observe import copy_json
from probes.certificates import describe_certificate
from probes.ooni.encoding import readable_response
from probes.ooni.legacy_failures import modern_failure

# The resolver the device itself uses; OONI v0.5 adds public resolvers beside it.
SYSTEM_ENGINES = frozenset({"system", "getaddrinfo", "golang_net_resolver", "android_dns_cache"})
PUBLIC_ENGINES = frozenset({"udp", "doh", "dot", "tcp"})
_DEPTH_TAG = re.compile(r"^depth=(\d+)$")
_STEP_KEYS = ("queries", "tcp_connect", "tls_handshakes")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise(measurement: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the measurement whose test_keys blockmon's analysis reads right."""
    normalised: dict[str, Any] = copy_json(dict(measurement))
    test_keys = normalised.get("test_keys")
    normalised["test_keys"] = normalise_test_keys(test_keys if isinstance(test_keys, dict) else {})
    return normalised


def normalise_test_keys(test_keys: Mapping[str, Any]) -> dict[str, Any]:
    keys: dict[str, Any] = copy_json(dict(test_keys))
    for name in (*_STEP_KEYS, "requests"):
        keys[name] = [e for e in keys.get(name) or [] if isinstance(e, dict)]
        for entry in keys[name]:
            _tag_depth(entry)
    for query in keys["queries"]:
        query["failure"] = modern_failure(query.get("failure"))
    for connect in keys["tcp_connect"]:
        status = connect.setdefault("status", {})
        if isinstance(status, dict):
            status["failure"] = modern_failure(status.get("failure"))
    for handshake in keys["tls_handshakes"]:
        handshake["failure"] = modern_failure(handshake.get("failure"))
        if not handshake.get("certificate_chain"):
            chain = _describe_peer_certificates(handshake.get("peer_certificates"))
            if chain:
                handshake["certificate_chain"] = chain
    for request in keys["requests"]:
        request["failure"] = modern_failure(request.get("failure"))
        if isinstance(request.get("response"), dict):
            request["response"] = readable_response(request["response"])
    _fill_handshake_addresses(keys)
    _separate_public_resolvers(keys)
    _add_failed_hop_request(keys)
    control = keys.get("control")
    if isinstance(control, dict) and isinstance(control.get("dns"), dict):
        control["dns"]["failure"] = modern_failure(control["dns"].get("failure"))
    return keys


def _tag_depth(entry: dict[str, Any]) -> None:
    for tag in entry.get("tags") or []:
        found = _DEPTH_TAG.match(str(tag))
        if found and int(found.group(1)) > 0:
            entry["x_redirect_hop"] = int(found.group(1))


def _describe_peer_certificates(certificates: Any) -> list[Any]:
    chain = []
    for item in certificates or []:
        if isinstance(item, dict) and item.get("format") == "base64":
            try:
                der = base64.b64decode(str(item.get("data") or ""))
            except (binascii.Error, ValueError):
                continue
            chain.append(describe_certificate(der))
    return chain


def _fill_handshake_addresses(keys: dict[str, Any]) -> None:
    # v0.4 records handshakes without `address`; when one TLS endpoint was connected, it is that.
    endpoints = {
        f"{c.get('ip')}:{c.get('port')}"
        for c in keys["tcp_connect"]
        if c.get("port") == 443 and (c.get("status") or {}).get("success")
        and not c.get("x_redirect_hop") and ":" not in str(c.get("ip"))
    }
    if len(endpoints) != 1:
        return
    (endpoint,) = endpoints
    for handshake in keys["tls_handshakes"]:
        if not handshake.get("address") and not handshake.get("x_redirect_hop"):
            handshake["address"] = endpoint


def _separate_public_resolvers(keys: dict[str, Any]) -> None:
    # v0.5 tags "classic" the steps that follow the system resolver's answers (what OONI's own
    # classic analysis reads); the others used public resolvers' or the control's addresses.
    if any("classic" in (e.get("tags") or []) for name in _STEP_KEYS for e in keys[name]):
        for name in (*_STEP_KEYS, "requests"):
            keys[f"x_other_{name}"] = [e for e in keys[name] if "classic" not in (e.get("tags") or [])]
            keys[name] = [e for e in keys[name] if "classic" in (e.get("tags") or [])]
        return
    queries = keys["queries"]
    if not any(q.get("engine") in SYSTEM_ENGINES for q in queries):
        return
    keys["x_public_queries"] = [q for q in queries if q.get("engine") in PUBLIC_ENGINES]
    keys["queries"] = [q for q in queries if q.get("engine") not in PUBLIC_ENGINES]


def _add_failed_hop_request(keys: dict[str, Any]) -> None:
    requests = keys["requests"]
    if not requests:
        return
    depth = len(requests)
    latest = requests[0]
    response = latest.get("response") or {}
    location = _header(response.get("headers") or {}, "location")
    code = response.get("code")
    if latest.get("failure") or not location or not isinstance(code, int) or not 300 <= code < 400:
        return
    if not any(e.get("x_redirect_hop") == depth for name in _STEP_KEYS for e in keys[name]):
        return
    url = urljoin(str((latest.get("request") or {}).get("url") or ""), location)
    failed = _first_failed_step(keys, depth, url)
    if failed is None:
        return
    failure, address = failed
    requests.insert(0, {
        "request": {"method": "GET", "url": url, "headers": {}, "headers_list": []},
        "response": None,
        "failure": failure,
        "address": address,
        "x_ooni_added": "a redirect hop that failed before its HTTP exchange",
    })


def _first_failed_step(keys: dict[str, Any], depth: int, url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    queries = [q for q in keys["queries"] if q.get("x_redirect_hop") == depth]
    if queries and not any(q.get("answers") for q in queries):
        failure = next((q.get("failure") for q in queries if q.get("failure")), None)
        if failure:
            return str(failure), ""
    connects = [
        c for c in keys["tcp_connect"] if c.get("x_redirect_hop") == depth and c.get("port") == port
    ]
    if connects and not any((c.get("status") or {}).get("success") for c in connects):
        first = connects[0]
        failure = (first.get("status") or {}).get("failure")
        if failure:
            ip = str(first.get("ip"))
            host = f"[{ip}]" if ":" in ip else ip
            return str(failure), f"{host}:{port}"
    handshakes = [h for h in keys["tls_handshakes"] if h.get("x_redirect_hop") == depth]
    if handshakes and not any(h.get("failure") is None for h in handshakes):
        return str(handshakes[0].get("failure")), str(handshakes[0].get("address") or "")
    return None


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if str(key).casefold() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return None
