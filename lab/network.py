"""The Lab: starts resolvers, sites, middleboxes and the control channel in one /24, and stops them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import time
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import web

from lab.addressing import CONTROL_PORT, AddressPlan, assign_site_addresses, candidate_prefixes
from lab.certificates import (
    ServerContexts,
    certificate_pem,
    make_lab_root,
    make_rogue_authority,
)
from lab.control import make_control_app
from lab.dns_server import DnsServer, bind_udp
from lab.firewall import Firewall, FirewallUnavailable
from lab.front import Backends, Front
from lab.policies import (
    DEFAULT_CATALOGUE,
    DEFAULT_REDIRECTS,
    FIREWALL_POLICIES,
    SHAPING_POLICIES,
    bulk_hostname,
    check_hostname,
    check_policy,
    firewall_verdicts,
)
from lab.shaping import Shaper, ShapingUnavailable
from lab.sites import (
    make_doctored_handler,
    make_protocol_factory,
    make_site_handler,
    serve_blockpage,
)
from lab.state import LabState


class LabError(RuntimeError):
    """The lab cannot start: not root, no free /24, bad hostnames or policies."""


@dataclass(frozen=True)
class LabInfo:
    """Everything a probe, helper or test needs to use a running lab; written as JSON for others."""

    prefix: str
    public_range: str
    honest_resolver: str
    censored_resolver: str
    censored_source: str
    blockpage_ip: str
    ca_file: str
    control_url: str | None
    hosts: dict[str, str]
    site_addresses: dict[str, str] = field(default_factory=dict)
    cdn_edge_ip: str = ""
    dead_ip: str = ""
    redirects: dict[str, str] = field(default_factory=dict)
    # policy -> why it is missing (tcp.* without nftables); their catalogue hosts are left out.
    unavailable_policies: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LabInfo:
        """Parse what to_json wrote; ValueError names a missing key (unknown keys are ignored)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("lab info: expected a JSON object")
        fields = cls.__dataclass_fields__
        for name, spec in fields.items():
            required = spec.default is MISSING and spec.default_factory is MISSING
            if required and name not in data:
                raise ValueError(f"lab info: key {name!r} missing")
        return cls(**{key: value for key, value in data.items() if key in fields})

    def hostname_for(self, policy: str) -> str:
        """The catalogue hostname that carries a policy (first one found)."""
        for hostname, host_policy in self.hosts.items():
            if host_policy == policy:
                return hostname
        raise KeyError(f"lab: no hostname with policy {policy!r}")


def _check_hosts(hosts: dict[str, str], where: str) -> dict[str, str]:
    return {
        check_hostname(hostname, where): check_policy(policy, f"{where} {hostname}")
        for hostname, policy in hosts.items()
    }


class Lab:
    """async with Lab(workdir, extra_hosts={...}) as lab: ... lab.info ...; needs root."""

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        extra_hosts: dict[str, str] | None = None,
        redirects: dict[str, str] | None = None,
        bulk_sites: int = 0,
        catalogue: bool = True,
        info_file: str | Path | None = None,
        control: bool = True,
    ) -> None:
        if bulk_sites < 0:
            raise ValueError(f"lab: bulk_sites must be >= 0, got {bulk_sites}")
        self._workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="blockmon-lab-"))
        self._hosts = dict(DEFAULT_CATALOGUE) if catalogue else {}
        self._hosts.update(_check_hosts(extra_hosts or {}, "lab extra host"))
        self._explicit_firewall_hosts = {
            h for h, p in (extra_hosts or {}).items() if p in FIREWALL_POLICIES
        }
        self._explicit_shaping_hosts = {
            h for h, p in (extra_hosts or {}).items() if p in SHAPING_POLICIES
        }
        self._shaper: Shaper | None = None
        self._redirects = dict(DEFAULT_REDIRECTS) if catalogue else {}
        for hostname, url in (redirects or {}).items():
            name = check_hostname(hostname, "lab redirect")
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"lab redirect {hostname}: not an http(s) URL: {url!r}")
            self._hosts.setdefault(name, "none")
            self._redirects[name] = url
        self._bulk = [bulk_hostname(n) for n in range(1, bulk_sites + 1)]
        self._info_file = Path(info_file) if info_file else None
        self._with_control = control
        self._state: LabState | None = None
        self._firewall: Firewall | None = None
        self._unavailable: dict[str, str] = {}
        self._dns_servers: list[DnsServer] = []
        self._udp_sockets: list[socket.socket] = []
        self._front: Front | None = None
        self._web_servers: list[web.Server] = []
        self._control_runner: web.AppRunner | None = None
        self._ca_file = self._workdir / "lab-ca.pem"
        # Policy changes rewrite the whole nftables table; one at a time so none is lost.
        self._policy_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Lab:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if os.geteuid() != 0:
            raise LabError(
                "lab: needs root to bind ports 53, 80 and 443 on 127.0.0.0/8 (run as root)"
            )
        self._workdir.mkdir(parents=True, exist_ok=True)
        plan, udp_sockets = _claim_prefix()
        self._udp_sockets = list(udp_sockets)
        addresses = assign_site_addresses(plan, list(self._hosts), self._bulk)
        policies = dict(self._hosts) | {hostname: "none" for hostname in self._bulk}
        self._state = state = LabState(plan, policies, addresses, self._redirects)

        self._firewall = Firewall(plan.prefix, plan.censored_source)
        await self._start_firewall(state)
        self._shaper = Shaper(plan.prefix)
        await self._start_shaping(state)

        lab_root = make_lab_root()
        self._ca_file.write_bytes(certificate_pem(lab_root.certificate))
        rogue = make_rogue_authority()
        # For reference only: nothing trusts it, which is the point of tls.mitm.
        (self._workdir / "rogue-intermediate.pem").write_bytes(certificate_pem(rogue.certificate))
        known = set(state.policies)
        lab_contexts = ServerContexts(lab_root, self._workdir / "certs", forged=False, known=known)
        lab_contexts.prepare(known)
        rogue_contexts = ServerContexts(rogue, self._workdir / "forged", forged=True, known=known)

        site, doctored, blockpage = (
            make_protocol_factory(make_site_handler(state)),
            make_protocol_factory(make_doctored_handler(state)),
            make_protocol_factory(serve_blockpage),
        )
        self._web_servers = [site, doctored, blockpage]
        backends = Backends(
            site,
            doctored,
            blockpage,
            lab_contexts.listening_context,
            rogue_contexts.listening_context,
        )

        honest_socket, censored_socket = udp_sockets
        self._dns_servers = [
            DnsServer(honest_socket, lambda name: state.dns_plan(name, censored_resolver=False)),
            DnsServer(censored_socket, lambda name: state.dns_plan(name, censored_resolver=True)),
        ]
        for server in self._dns_servers:
            try:
                await server.start()
            except OSError as error:
                raise LabError(
                    f"lab: cannot start a resolver on TCP port 53: {error.strerror}"
                ) from None

        self._front = Front(
            state, backends, self._shaper if self._shaper.available else None
        )
        for address in [*state.listening_addresses(), plan.blockpage]:
            for port in (80, 443):
                try:
                    self._front.listen(address, port)
                except OSError as error:
                    raise LabError(
                        f"lab: cannot listen on {address}:{port}: {error.strerror}"
                    ) from None
        self._front.start()

        if self._with_control:
            self._control_runner = web.AppRunner(
                make_control_app(
                    self.set_policy, lambda: self.info.to_json(), self.set_vantage_shaping
                ),
                access_log=None,
            )
            await self._control_runner.setup()
            try:
                await web.TCPSite(self._control_runner, plan.control, CONTROL_PORT).start()
            except OSError as error:
                raise LabError(
                    f"lab: cannot listen on {plan.control}:{CONTROL_PORT}: {error.strerror}"
                ) from None
        self._write_info_file()

    async def _start_firewall(self, state: LabState) -> None:
        assert self._firewall is not None
        try:
            await self._firewall.apply(firewall_verdicts(state.policies, state.addresses))
        except FirewallUnavailable as error:
            if self._explicit_firewall_hosts:
                raise LabError(
                    f"{error} (asked for {', '.join(sorted(self._explicit_firewall_hosts))})"
                ) from None
            # Without nftables the catalogue's tcp.* hosts are left out, and said so in the info.
            for policy in FIREWALL_POLICIES:
                self._unavailable[policy] = str(error)
            for hostname in [h for h, p in state.policies.items() if p in FIREWALL_POLICIES]:
                del state.policies[hostname]

    async def _start_shaping(self, state: LabState) -> None:
        assert self._shaper is not None
        try:
            self._shaper.check()
        except ShapingUnavailable as error:
            if self._explicit_shaping_hosts:
                raise LabError(
                    f"{error} (asked for {', '.join(sorted(self._explicit_shaping_hosts))})"
                ) from None
            for policy in SHAPING_POLICIES:
                self._unavailable[policy] = str(error)
            for hostname in [h for h, p in state.policies.items() if p in SHAPING_POLICIES]:
                del state.policies[hostname]

    async def stop(self) -> None:
        if self._control_runner is not None:
            await self._control_runner.cleanup()
            self._control_runner = None
        if self._front is not None:
            await self._front.stop()
            self._front = None
        for server in self._web_servers:
            await server.shutdown(timeout=1.0)
        self._web_servers = []
        for dns_server in self._dns_servers:
            await dns_server.stop()
        self._dns_servers = []
        for udp_socket in self._udp_sockets:
            udp_socket.close()  # the prefix lock, if start failed before the resolvers took it
        self._udp_sockets = []
        if self._firewall is not None:
            await self._firewall.remove()
            self._firewall = None
        if self._shaper is not None:
            await self._shaper.remove()
            self._shaper = None

    # -- what others use ----------------------------------------------------------------------
    @property
    def info(self) -> LabInfo:
        if self._state is None:
            raise LabError("lab: not started")
        plan = self._state.plan
        return LabInfo(
            prefix=plan.prefix,
            public_range=plan.public_range,
            honest_resolver=f"{plan.honest_resolver}:53",
            censored_resolver=f"{plan.censored_resolver}:53",
            censored_source=plan.censored_source,
            blockpage_ip=plan.blockpage,
            ca_file=str(self._ca_file),
            control_url=f"http://{plan.control}:{CONTROL_PORT}" if self._with_control else None,
            hosts=dict(self._state.policies),
            site_addresses={
                h: a for h, a in self._state.addresses.items() if h in self._state.policies
            },
            cdn_edge_ip=plan.cdn_edge,
            dead_ip=plan.dead,
            redirects=dict(self._state.redirects),
            unavailable_policies=dict(self._unavailable),
        )

    @property
    def bulk_hostnames(self) -> list[str]:
        return list(self._bulk)

    async def set_policy(self, hostname: str, policy: str) -> None:
        """Change a hostname's policy while the lab runs; ValueError for unknown names/policies."""
        if self._state is None or self._firewall is None:
            raise LabError("lab: not started")
        name = check_hostname(hostname, "lab set_policy")
        check_policy(policy, f"lab set_policy {name}")
        if name not in self._state.policies:
            raise ValueError(f"lab set_policy: unknown hostname {name!r} (add it with extra_hosts)")
        if policy in SHAPING_POLICIES and self._shaper is not None and not self._shaper.available:
            raise ShapingUnavailable(self._shaper.unavailable_reason or "lab: shaping unavailable")
        async with self._policy_lock:
            old = self._state.policies[name]
            if policy in FIREWALL_POLICIES or old in FIREWALL_POLICIES:
                updated = dict(self._state.policies) | {name: policy}
                await self._firewall.apply(firewall_verdicts(updated, self._state.addresses))
            self._state.policies[name] = policy
            self._write_info_file()

    def set_vantage_shaping(self, shaped: bool) -> None:
        """Shape everything the censored vantage fetches (a slow access network), or stop."""
        if self._state is None or self._shaper is None:
            raise LabError("lab: not started")
        if shaped and not self._shaper.available:
            raise ShapingUnavailable(self._shaper.unavailable_reason or "lab: shaping unavailable")
        self._state.vantage_shaped = shaped

    def _write_info_file(self) -> None:
        if self._info_file is not None:
            # Write then rename, so a reader polling for the file never sees half of it.
            partial = self._info_file.with_suffix(".partial")
            partial.write_text(self.info.to_json())
            partial.replace(self._info_file)


def _claim_prefix() -> tuple[AddressPlan, tuple[socket.socket, socket.socket]]:
    """Pick a free 127.a.b.0/24: binding both resolvers' UDP port 53 is the lock."""
    seed = os.getpid() ^ time.time_ns()
    for prefix in candidate_prefixes(seed):
        plan = AddressPlan(prefix)
        try:
            honest = bind_udp(plan.honest_resolver)
        except OSError:
            continue
        try:
            censored = bind_udp(plan.censored_resolver)
        except OSError:
            honest.close()
            continue
        return plan, (honest, censored)
    raise LabError("lab: found no free /24 in 127.0.0.0/8 after 64 tries")
