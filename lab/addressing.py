"""The lab's address plan inside its own /24 of 127.0.0.0/8, and how sites get their addresses."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

CONTROL_PORT = 8080
# Host numbers inside the /24 with a fixed role; sites take the rest from FIRST_SITE_HOST up.
CONTROL_HOST = 1
CENSORED_SOURCE_HOST = 2
DEAD_HOST = 3  # nothing listens here: "down" sites resolve to it and are refused
CDN_EDGE_HOST = 8
BLOCKPAGE_HOST = 9
FIRST_SITE_HOST = 10
HONEST_RESOLVER_HOST = 53
CENSORED_RESOLVER_HOST = 54


@dataclass(frozen=True, slots=True)
class AddressPlan:
    prefix: str  # "127.77.5"

    def address(self, host_number: int) -> str:
        return f"{self.prefix}.{host_number}"

    @property
    def public_range(self) -> str:
        return f"{self.prefix}.0/24"

    @property
    def control(self) -> str:
        return self.address(CONTROL_HOST)

    @property
    def censored_source(self) -> str:
        return self.address(CENSORED_SOURCE_HOST)

    @property
    def dead(self) -> str:
        return self.address(DEAD_HOST)

    @property
    def cdn_edge(self) -> str:
        return self.address(CDN_EDGE_HOST)

    @property
    def blockpage(self) -> str:
        return self.address(BLOCKPAGE_HOST)

    @property
    def honest_resolver(self) -> str:
        return self.address(HONEST_RESOLVER_HOST)

    @property
    def censored_resolver(self) -> str:
        return self.address(CENSORED_RESOLVER_HOST)

    def site_pool(self) -> list[str]:
        reserved = {HONEST_RESOLVER_HOST, CENSORED_RESOLVER_HOST}
        return [self.address(n) for n in range(FIRST_SITE_HOST, 255) if n not in reserved]


def assign_site_addresses(
    plan: AddressPlan, dedicated: Iterable[str], shared: Iterable[str]
) -> dict[str, str]:
    """Give each dedicated hostname its own address; bulk hostnames share what is left, in turn."""
    pool = plan.site_pool()
    addresses: dict[str, str] = {}
    for hostname in dedicated:
        if not pool:
            raise ValueError(
                f"lab: more than {len(plan.site_pool())} hostnames do not fit in one /24"
            )
        addresses[hostname] = pool.pop(0)
    if not pool:
        pool = [plan.cdn_edge]  # virtual hosting by Host/SNI still tells them apart
    for index, hostname in enumerate(shared):
        addresses[hostname] = pool[index % len(pool)]
    return addresses


def candidate_prefixes(seed: int, count: int = 64) -> list[str]:
    """Prefixes 127.<a>.<b> to try in order; a is 64..250 so 127.0.0.x (resolved, lo) stays free."""
    generator = random.Random(seed)
    return [f"127.{generator.randint(64, 250)}.{generator.randint(1, 254)}" for _ in range(count)]
