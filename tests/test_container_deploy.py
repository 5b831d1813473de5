"""The shipped deployment run for real: images built, docker-compose.yml up under podman-compose,
a probe enrolled as the README says, its lab measurements in the collector's PostgreSQL."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import LabInfo

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "deploy" / "container" / "compose.loopback.yml"]
# Outside the repository and kept between runs: the debootstrap tarball (about 1.5 min to make).
CACHE = Path(os.environ.get("BLOCKMON_DEPLOY_CACHE", Path.home() / ".cache" / "blockmon-deploy"))
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
VANTAGE = "kz-almaty-1"
TARGETS = {"ok": "https://ok.lab.test/", "nxdomain": "https://nxdomain.lab.test/"}
# (blocking, blocking_method) the lab's catalogue gives each target (tests/test_measure_lab.py).
EXPECTED = {"https://ok.lab.test/": ("false", None),
            "https://nxdomain.lab.test/": ("dns", "dns.nxdomain")}
# The runtime crun fails on this kind of machine's hybrid cgroups, and the default ulimits
# cannot be raised there ("setrlimit RLIMIT_NOFILE: Operation not permitted").
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""
# The host's trust store and pip's use of it: where egress goes through a TLS proxy, builds
# inside the image reach the package index only with the host's CAs.
TRUST_LAYER = """FROM {base}
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf
"""


def missing_tool() -> str | None:
    """Why this machine cannot run the deployment, in one line, or None."""
    if os.geteuid() != 0:
        return "the container deployment needs root (rootful podman, debootstrap, the lab)"
    for tool in ("podman", "debootstrap", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install podman runc debootstrap)"
    if podman_compose() is None:
        return "podman-compose is not installed (pip install podman-compose)"
    return None


def podman_compose() -> str | None:
    beside_python = Path(sys.executable).with_name("podman-compose")
    return str(beside_python) if beside_python.exists() else shutil.which("podman-compose")


def run(command: list[str], env: dict[str, str], timeout: float = 600,
        check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout, input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(1)


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port: int = probe_socket.getsockname()[1]
        return port


def debian_mirror() -> str:
    """The host's own Debian mirror, from its apt sources (deb822 or one-line format)."""
    sources = [*Path("/etc/apt/sources.list.d").glob("*.sources"), Path("/etc/apt/sources.list"),
               *Path("/etc/apt/sources.list.d").glob("*.list")]
    for source in sources:
        if not source.exists():
            continue
        text = source.read_text()
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s*)?)(\S+)", text, re.MULTILINE):
            if "security" not in match.group(1):
                return match.group(1)
    pytest.skip("no Debian mirror in /etc/apt: debootstrap has nowhere to fetch from")


def ensure_base_image(env: dict[str, str], workdir: Path) -> str:
    """A Debian bookworm image with Python 3.11 and the host's trust store; cached."""
    raw_tag = "localhost/blockmon-bookworm:minbase"
    if run(["podman", "image", "exists", raw_tag], env, check=False).returncode != 0:
        tarball = CACHE / "bookworm-minbase.tar"
        if not tarball.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            rootfs = CACHE / "rootfs.partial"
            shutil.rmtree(rootfs, ignore_errors=True)
            run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
                 str(rootfs), debian_mirror()], env, timeout=1800)
            for clutter in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                            "usr/share/man", "usr/share/locale"):
                for entry in (rootfs / clutter).glob("*"):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            run(["tar", "-C", str(rootfs), "-cf", f"{tarball}.partial", "."], env)
            Path(f"{tarball}.partial").rename(tarball)
            shutil.rmtree(rootfs)
        run(["podman", "import", str(tarball), raw_tag], env)
    digest = hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest()[:12]
    context = workdir / "trust"
    context.mkdir()
    shutil.copy(HOST_CA_BUNDLE, context / "ca-certificates.crt")
    (context / "Containerfile").write_text(TRUST_LAYER.format(base=raw_tag))
    tag = f"localhost/blockmon-base:bookworm-{digest}"
    run(["podman", "build", "--network", "host", "-t", tag, str(context)], env)
    return tag


def build_image(env: dict[str, str], tag: str, base: str, containerfile: str) -> float:
    started = time.monotonic()
    run(["podman", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
         "-f", containerfile, "-t", tag, "."], env, timeout=1800)
    return round(time.monotonic() - started, 1)


def image_megabytes(env: dict[str, str], tag: str) -> float:
    size = run(["podman", "image", "inspect", "--format", "{{.Size}}", tag], env).stdout
    return round(int(size.strip()) / 1e6, 1)


class Deployment:
    """One podman-compose project of the shipped compose file plus the loopback override."""

    def __init__(self, env: dict[str, str], project: str) -> None:
        self.env = env
        self.project = project

    def compose(self, *arguments: str, check: bool = True,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        files = [word for path in COMPOSE_FILES for word in ("-f", str(path))]
        command = [podman_compose() or "podman-compose", "-p", self.project, *files, *arguments]
        return run(command, env or self.env, check=check)

    def containers(self) -> dict[str, str]:
        """Running or stopped containers of this project: service name -> container name."""
        listing = run(["podman", "ps", "-a", "--filter",
                       f"label=io.podman.compose.project={self.project}", "--format",
                       '{{index .Labels "com.docker.compose.service"}} {{.Names}}'], self.env)
        return dict(line.split() for line in listing.stdout.splitlines() if line.strip())

    def volumes(self) -> list[str]:
        listing = run(["podman", "volume", "ls", "--quiet", "--filter",
                       f"label=io.podman.compose.project={self.project}"], self.env)
        return listing.stdout.split()

    def healthy(self, service: str) -> bool:
        # Podman 4.3 runs health checks from systemd timers, and there is no systemd here, so
        # they are run by hand; podman-compose says so and skips `condition: service_healthy`.
        name = self.containers().get(service)
        return name is not None and run(["podman", "healthcheck", "run", name], self.env,
                                        check=False).returncode == 0

    def logs(self, service: str) -> str:
        result = run(["podman", "logs", self.containers()[service]], self.env, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        self.compose("down", "-v", check=False)
        for name in self.containers().values():
            run(["podman", "rm", "-f", name], self.env, check=False)
        for volume in self.volumes():
            run(["podman", "volume", "rm", "-f", volume], self.env, check=False)


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except OSError as error:
        return 0, str(error)


def stored_measurements(database_url: str) -> list[tuple[str, str, str | None, str, str]]:
    import psycopg  # a test extra, also what the collector uses

    try:
        with psycopg.connect(database_url, connect_timeout=5) as connection:
            rows = connection.execute("SELECT uid, url, blocking, blocking_method, vantage_id "
                                      "FROM measurements ORDER BY measured_at, url").fetchall()
    except psycopg.Error:
        return []
    return [tuple(row) for row in rows]


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    reason = missing_tool()
    if reason:
        pytest.skip(reason)
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


@pytest.fixture(scope="module")
def images(podman_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The base, PostgreSQL and blockmon images, with the build figures."""
    started = time.monotonic()
    base = ensure_base_image(podman_env, tmp_path_factory.mktemp("base"))
    figures: dict[str, Any] = {"base_image": base,
                               "base_image_seconds": round(time.monotonic() - started, 1)}
    figures["postgres_build_seconds"] = build_image(
        podman_env, "localhost/blockmon-postgres:15", base, "deploy/container/postgres.Containerfile")
    figures["blockmon_build_seconds"] = build_image(
        podman_env, "localhost/blockmon:deploy-test", base, "Dockerfile")
    figures["blockmon_image_mb"] = image_megabytes(podman_env, "localhost/blockmon:deploy-test")
    figures["postgres_image_mb"] = image_megabytes(podman_env, "localhost/blockmon-postgres:15")
    return figures


@pytest.fixture
def deployment(podman_env: dict[str, str], images: dict[str, Any], lab_info: LabInfo,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, str]]:
    share = tmp_path_factory.mktemp("share")
    # Containers run as the image's own user: the share and its files must be world-readable.
    share.chmod(0o755)
    shutil.copy(lab_info.ca_file, share / "lab-ca.pem")
    (share / "lab-ca.pem").chmod(0o644)
    registry = ['[list]\nname = "deploy-test"\n']
    for target_id, url in TARGETS.items():
        registry.append(f'[[target]]\nid = "{target_id}"\nname = "{target_id}"\n'
                        f'category_code = "NEWS"\n[[target.url]]\nurl = "{url}"\n'
                        'role = "content"\n')
    (share / "targets.toml").write_text("\n".join(registry))
    (share / "targets.toml").chmod(0o644)
    password = os.urandom(12).hex()
    ports = {"postgres": free_port(), "collector": free_port(), "helper": free_port()}
    env = {
        **podman_env,
        "POSTGRES_PASSWORD": password,
        "BLOCKMON_HELPER_TOKEN": os.urandom(12).hex(),
        "BLOCKMON_ENROLMENT_SECRET": "",
        "BLOCKMON_POSTGRES_IMAGE": "localhost/blockmon-postgres:15",
        "BLOCKMON_IMAGE": "localhost/blockmon:deploy-test",
        "BLOCKMON_POSTGRES_PORT": str(ports["postgres"]),
        "BLOCKMON_COLLECTOR_PORT": str(ports["collector"]),
        "BLOCKMON_HELPER_PORT": str(ports["helper"]),
        "BLOCKMON_LAB_SHARE": str(share),
        "BLOCKMON_LAB_HONEST_RESOLVER": lab_info.honest_resolver,
        "BLOCKMON_LAB_CENSORED_RESOLVER": lab_info.censored_resolver,
        "BLOCKMON_LAB_CENSORED_SOURCE": lab_info.censored_source,
        "BLOCKMON_LAB_PUBLIC_RANGE": lab_info.public_range,
    }
    project = f"blockmon-deploy-{os.getpid()}"
    deployed = Deployment(env, project)
    deployed.remove()
    database_url = f"postgresql://blockmon:{password}@127.0.0.1:{ports['postgres']}/blockmon"
    try:
        yield deployed, database_url
    finally:
        deployed.remove()


def test_compose_up_enrol_measure_upload_and_survive_down_up(
        deployment: tuple[Deployment, str], images: dict[str, Any]) -> None:
    deployed, database_url = deployment
    collector = f"http://127.0.0.1:{deployed.env['BLOCKMON_COLLECTOR_PORT']}"
    started = time.monotonic()

    # The README's order: the servers first, then a secret from the collector, then the probe.
    deployed.compose("up", "-d", "postgres", "collector", "helper")
    for service in ("postgres", "collector", "helper"):
        wait_until(functools.partial(deployed.healthy, service), 180, f"{service} healthy")
    secret = deployed.compose("exec", "-T", "collector", "blockmon", "collector", "enrol",
                              "--vantage", VANTAGE).stdout.strip().splitlines()[-1]
    assert secret.startswith("bme_"), secret
    published = deployed.compose("exec", "-T", "collector", "blockmon", "collector",
                                 "publish-targets", "/lab/targets.toml").stdout
    assert "version 1" in published, published
    deployed.compose("up", "-d", "probe", env={**deployed.env, "BLOCKMON_ENROLMENT_SECRET": secret})
    probe_started = time.monotonic()

    def both_arrived() -> list[tuple[str, str, str | None, str, str]]:
        rows = stored_measurements(database_url)
        return rows if {row[1] for row in rows} >= set(EXPECTED) else []

    try:
        rows = wait_until(both_arrived, 240, "both measurements in the collector's database")
    except AssertionError as error:
        raise AssertionError(f"{error}\nprobe log:\n{deployed.logs('probe')[-4000:]}") from None
    first_measurement = time.monotonic()
    assert {row[1]: (row[2], row[3]) for row in rows} == EXPECTED
    assert {row[4] for row in rows} == {VANTAGE}
    assert "registered as kz-almaty-1" in deployed.logs("probe")

    status, health = fetch(f"{collector}/api/v1/health")
    assert status == 200 and json.loads(health)["database"] == "postgres", health
    status, metrics = fetch(f"{collector}/metrics")
    assert status == 200
    assert f'blockmon_measurements_total{{vantage="{VANTAGE}",method="dns.nxdomain"}}' in metrics
    status, dashboard = fetch(f"{collector}/dashboard/")
    assert status == 200 and "nxdomain.lab.test" in dashboard, dashboard[:500]

    # down / up: the volumes keep the database and the probe's token (the secret was single-use
    # and is no longer given, so a probe that lost its token could not upload again).
    before = {row[0] for row in rows}
    deployed.compose("down")
    assert deployed.containers() == {}
    assert len(deployed.volumes()) == 2, deployed.volumes()
    deployed.compose("up", "-d")
    wait_until(lambda: deployed.healthy("collector"), 180, "collector healthy after up")

    def a_new_round_arrived() -> bool:
        uids = {row[0] for row in stored_measurements(database_url)}
        return uids > before and len(uids - before) >= len(EXPECTED)

    try:
        wait_until(a_new_round_arrived, 240, "the old rows kept and a new round uploaded")
    except AssertionError as error:
        raise AssertionError(f"{error}\nprobe log:\n{deployed.logs('probe')[-4000:]}") from None
    assert "registered as" not in deployed.logs("probe")

    figures = {**images, "date": time.strftime("%Y-%m-%d"),
               "podman": run(["podman", "--version"], deployed.env).stdout.strip(),
               "seconds_from_up_to_first_measurement": round(first_measurement - started, 1),
               "seconds_from_probe_up_to_first_measurement":
                   round(first_measurement - probe_started, 1)}
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "last-run.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
