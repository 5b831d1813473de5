"""Where a registering probe is, from its own word or, failing that, from its address; pure."""

from __future__ import annotations

from probes.asn import AsnDatabase

UNKNOWN_ASN = "AS0"
UNKNOWN_CC = "ZZ"


def fill_probe_network(
    registration: dict[str, str], client_address: str | None, database: AsnDatabase | None
) -> dict[str, str]:
    """The registration with `probe_asn`/`probe_cc` (and an empty network name) looked up from the
    client's address when the probe sent none (AS0/ZZ); the probe's own values always win.

    The address is used for this one lookup and never stored: the collector keeps the network a
    probe is in, not where it is.
    """
    if database is None or not client_address:
        return registration
    needs_asn = registration["probe_asn"] == UNKNOWN_ASN
    needs_cc = registration["probe_cc"] == UNKNOWN_CC
    if not (needs_asn or needs_cc):
        return registration
    info = database.lookup(client_address)
    if info is None:
        return registration
    filled = dict(registration)
    if needs_asn:
        filled["probe_asn"] = info.as_label
        if not filled["probe_network_name"]:
            filled["probe_network_name"] = info.name[:256]
    if needs_cc and info.cc:
        filled["probe_cc"] = info.cc
    return filled
