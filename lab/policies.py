"""Lab policies: the closed vocabulary, the default catalogue, and what each policy makes a box do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Policy = Literal[
    "none",
    "dns.nxdomain",
    "dns.servfail",
    "dns.timeout",
    "dns.bogon",
    "dns.blockpage",
    "tcp.reset",
    "tcp.timeout",
    "tls.reset",
    "tls.timeout",
    "tls.mitm",
    "http.reset",
    "http.timeout",
    "http.blockpage",
    "http.diff",
    "cdn",
    "dynamic",
    "down",
    "down.nxdomain",
    "throttle",
    "slow",
    "slow.control",
    "flaky.reset",
]
POLICIES: Final[tuple[str, ...]] = Policy.__args__  # type: ignore[attr-defined]

# IP blocking needs nftables; without it these policies are refused as "unavailable".
FIREWALL_POLICIES: Final[frozenset[str]] = frozenset({"tcp.reset", "tcp.timeout"})
# Real shaping needs tc (lab/shaping.py); without it these policies are refused as "unavailable".
SHAPING_POLICIES: Final[frozenset[str]] = frozenset({"throttle", "slow", "slow.control"})

LAB_ZONE: Final = "lab.test"
BULK_ZONE: Final = f"bulk.{LAB_ZONE}"

# One hostname per policy, named after it, so a test reads like the scenario it checks.
DEFAULT_CATALOGUE: Final[dict[str, str]] = {
    f"ok.{LAB_ZONE}": "none",
    f"nxdomain.{LAB_ZONE}": "dns.nxdomain",
    f"servfail.{LAB_ZONE}": "dns.servfail",
    f"dns-timeout.{LAB_ZONE}": "dns.timeout",
    f"bogon.{LAB_ZONE}": "dns.bogon",
    f"dns-blockpage.{LAB_ZONE}": "dns.blockpage",
    f"tcp-reset.{LAB_ZONE}": "tcp.reset",
    f"tcp-timeout.{LAB_ZONE}": "tcp.timeout",
    f"tls-reset.{LAB_ZONE}": "tls.reset",
    f"tls-timeout.{LAB_ZONE}": "tls.timeout",
    f"tls-mitm.{LAB_ZONE}": "tls.mitm",
    f"http-reset.{LAB_ZONE}": "http.reset",
    f"http-timeout.{LAB_ZONE}": "http.timeout",
    f"http-blockpage.{LAB_ZONE}": "http.blockpage",
    f"http-diff.{LAB_ZONE}": "http.diff",
    f"cdn.{LAB_ZONE}": "cdn",
    f"dynamic.{LAB_ZONE}": "dynamic",
    f"down.{LAB_ZONE}": "down",
    f"down-nxdomain.{LAB_ZONE}": "down.nxdomain",
    f"redirect.{LAB_ZONE}": "none",
    f"throttle.{LAB_ZONE}": "throttle",
    f"slow.{LAB_ZONE}": "slow",
    f"slow-control.{LAB_ZONE}": "slow.control",
    f"flaky-reset.{LAB_ZONE}": "flaky.reset",
}
DEFAULT_REDIRECTS: Final[dict[str, str]] = {f"redirect.{LAB_ZONE}": f"https://ok.{LAB_ZONE}/"}

# The bogon the censored resolver answers: loopback, outside every lab /24, never a private range.
BOGON_ADDRESS: Final = "127.0.0.1"


def bulk_hostname(number: int) -> str:
    return f"site{number}.{BULK_ZONE}"


def check_policy(policy: str, where: str) -> str:
    """Return the policy, or raise ValueError naming it and where it came from."""
    if policy not in POLICIES:
        raise ValueError(f"{where}: unknown lab policy {policy!r} (known: {', '.join(POLICIES)})")
    return policy


def check_hostname(hostname: str, where: str) -> str:
    """Return the hostname lower-cased, or raise ValueError naming it."""
    name = hostname.strip().rstrip(".").lower()
    labels = name.split(".")
    if len(labels) < 2 or not all(
        label and len(label) <= 63 and all(c.isalnum() or c == "-" for c in label)
        for label in labels
    ):
        raise ValueError(f"{where}: not a hostname: {hostname!r}")
    return name


DnsKind = Literal["answer", "nxdomain", "servfail", "silence"]


@dataclass(frozen=True, slots=True)
class DnsPlan:
    """What a lab resolver does for one A query."""

    kind: DnsKind
    addresses: tuple[str, ...] = ()


def plan_dns_answer(
    policy: str,
    *,
    censored_resolver: bool,
    site_address: str,
    cdn_edge_address: str,
    blockpage_address: str,
    dead_address: str,
) -> DnsPlan:
    """Decide a resolver's answer for a hostname under a policy; the honest one only sees down.*."""
    if policy == "down.nxdomain":
        return DnsPlan("nxdomain")
    if policy == "down":
        return DnsPlan("answer", (dead_address,))
    if not censored_resolver:
        return DnsPlan("answer", (site_address,))
    match policy:
        case "dns.nxdomain":
            return DnsPlan("nxdomain")
        case "dns.servfail":
            return DnsPlan("servfail")
        case "dns.timeout":
            return DnsPlan("silence")
        case "dns.bogon":
            return DnsPlan("answer", (BOGON_ADDRESS,))
        case "dns.blockpage":
            return DnsPlan("answer", (blockpage_address,))
        case "cdn":
            return DnsPlan("answer", (cdn_edge_address,))
        case _:
            return DnsPlan("answer", (site_address,))


FrontAction = Literal["serve", "reset", "blackhole", "mitm", "blockpage", "diff"]
Protocol = Literal["tls", "http"]


def decide_front_action(
    policy: str | None, *, protocol: Protocol, from_censored_vantage: bool, attempt: int = 0
) -> FrontAction:
    """What the SNI/Host middlebox does with a connection, from its first bytes' hostname.

    `attempt` counts the censored vantage's connections to the hostname: flaky.reset resets every
    other one (the first, the third...), a censor that drops half the connections.
    """
    if policy is None or not from_censored_vantage:
        return "serve"
    if policy == "flaky.reset":
        return "reset" if attempt % 2 == 0 else "serve"
    if protocol == "tls":
        return {"tls.reset": "reset", "tls.timeout": "blackhole", "tls.mitm": "mitm"}.get(
            policy, "serve"
        )  # type: ignore[return-value]
    return {
        "http.reset": "reset",
        "http.timeout": "blackhole",
        "http.blockpage": "blockpage",
        "http.diff": "diff",
    }.get(policy, "serve")  # type: ignore[return-value]


def firewall_verdicts(policies: dict[str, str], addresses: dict[str, str]) -> dict[str, str]:
    """Map site address -> nft verdict ("reject with tcp reset" or "drop") for IP-blocked hosts."""
    verdicts: dict[str, str] = {}
    for hostname, policy in policies.items():
        if policy == "tcp.reset":
            verdicts[addresses[hostname]] = "reject with tcp reset"
        elif policy == "tcp.timeout":
            verdicts[addresses[hostname]] = "drop"
    return verdicts


def decide_shaping(policy: str | None, *, from_censored_vantage: bool, vantage_shaped: bool) -> bool:
    """Whether the server's side of a connection goes through the lab's shaped class.

    throttle: the censored vantage's connections to that name only (an SNI/Host-keyed throttle);
    slow: everyone's (a slow site); slow.control: everyone's but the censored vantage's (the
    control's view is the slow one); vantage_shaped: everything the censored vantage fetches
    (a slow access network, not a censor).
    """
    if from_censored_vantage and vantage_shaped:
        return True
    if policy == "throttle":
        return from_censored_vantage
    if policy == "slow.control":
        return not from_censored_vantage
    return policy == "slow"
