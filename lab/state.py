"""The lab's mutable world: which hostnames exist, their addresses, policies and redirects."""

from __future__ import annotations

from lab.addressing import AddressPlan
from lab.policies import DnsPlan, plan_dns_answer


class LabState:
    """Read by the resolvers, the front and the sites on every query; changed by set_policy."""

    def __init__(
        self,
        plan: AddressPlan,
        policies: dict[str, str],
        addresses: dict[str, str],
        redirects: dict[str, str],
    ) -> None:
        self.plan = plan
        self.policies = dict(policies)
        self.addresses = dict(addresses)
        self.redirects = dict(redirects)
        # A slow access network at the censored vantage: every fetch from there is shaped.
        self.vantage_shaped = False
        # The censored vantage's connections per hostname so far (flaky.reset's turn).
        self.attempts: dict[str, int] = {}
        # The first hostname given an address owns it (what a request without Host reaches).
        self.hostname_at: dict[str, str] = {}
        for hostname, address in self.addresses.items():
            self.hostname_at.setdefault(address, hostname)

    def policy_for(self, hostname: str | None) -> str | None:
        return None if hostname is None else self.policies.get(hostname)

    def next_attempt(self, hostname: str) -> int:
        """Count one more censored-vantage connection to the hostname; return its number from 0."""
        attempt = self.attempts.get(hostname, 0)
        self.attempts[hostname] = attempt + 1
        return attempt

    def dns_plan(self, hostname: str, *, censored_resolver: bool) -> DnsPlan | None:
        policy = self.policies.get(hostname)
        if policy is None:
            return None
        return plan_dns_answer(
            policy,
            censored_resolver=censored_resolver,
            site_address=self.addresses[hostname],
            cdn_edge_address=self.plan.cdn_edge,
            blockpage_address=self.plan.blockpage,
            dead_address=self.plan.dead,
        )

    def listening_addresses(self) -> list[str]:
        """Where sites listen on 80/443: every site address and the CDN edge."""
        return sorted(set(self.addresses.values()) | {self.plan.cdn_edge}, key=_address_order)


def _address_order(address: str) -> tuple[int, ...]:
    return tuple(int(part) for part in address.split("."))
