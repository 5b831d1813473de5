"""The settings dataclasses: one per [section], each key with its default, help and check."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from monitor.alerts.vocabulary import ALERT_KINDS
from monitor.settings.values import (
    WatchWindow,
    address_ranges,
    alert_kinds,
    as_number,
    country_code,
    crontab,
    database_scheme,
    fraction,
    host_port,
    http_url,
    identifier,
    list_names,
    not_negative,
    positive,
    readable_file,
    resolver_addresses,
    watch_window_order,
    within,
)
from probes.options import ProbeIdentity, ProbeOptions

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Knobs = TypeVar("Knobs", bound="DataclassInstance")

# A check returns None when the value is fine, else the reason it is not.
Check = Callable[[Any], str | None]


def setting(default: Any, help: str, *, check: Check | None = None, secret: bool = False,
            starter: bool = False, example: str | None = None) -> Any:
    """Declares one key: its default and help text live here and nowhere else.

    `starter` keys are written uncommented by `blockmon init` (the ones a new user must look at);
    `example` is the TOML value shown, commented out, for keys unset by default.
    """
    metadata = {"help": help, "check": check, "secret": secret, "starter": starter,
                "example": example}
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: default, metadata=metadata)
    return field(default=default, metadata=metadata)


# ---- sections -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """[probe]: who this probe is and how it measures."""

    vantage_id: str = setting("local", "Name of this vantage point, unique among your probes.",
                              check=identifier, starter=True)
    cc: str = setting("ZZ", "Country code of the probe's network (ZZ = unknown).",
                      check=country_code, starter=True)
    asn: str = setting("AS0", "Autonomous system of the probe's network, e.g. AS9198.",
                       check=as_number, starter=True)
    network_name: str = setting("", "Name of the probe's network, e.g. JSC Kazakhtelecom.",
                                starter=True)
    resolvers: tuple[str, ...] = setting(
        (), "DNS resolvers to ask (IP or IP:PORT); empty = the system resolver.", check=resolver_addresses)
    helper_url: str | None = setting(
        None, "Control helper (oohelperd-compatible) URL; unset = no control, verdicts unknown.",
        check=http_url, example='"https://helper.example.org/"')
    helper_token: str | None = setting(None, "Bearer token for the control helper.", secret=True, example='"secret-token"')
    source_address: str | None = setting(
        None, "Local address to bind outgoing sockets to (multi-homed hosts).", example='"192.0.2.5"')
    ca_file: str | None = setting(
        None, "CA bundle for TLS verification; unset = the system store.", example='"/etc/ssl/certs/ca-certificates.crt"')
    lab_public_ranges: tuple[str, ...] = setting(
        (), "Address ranges that count as public although they are bogons (lab only).",
        check=address_ranges)
    asn_database: str = setting(
        "", "iptoasn.com IP-to-ASN file (TSV, may be gzipped): DNS answers get their AS, and "
        "answers in the control's AS are consistent (docs/asn.md); empty = none.",
        check=readable_file)
    extra_fingerprints: str = setting(
        "", "CSV of blocking fingerprints in OONI's published format (fingerprints_http.csv / "
        "fingerprints_dns.csv of ooni/blocking-fingerprints), added to the packaged ones; "
        "empty = none.", check=readable_file)
    dns_timeout: float = setting(5.0, "Seconds to wait for one DNS answer.", check=positive)
    connect_timeout: float = setting(10.0, "Seconds to wait for a TCP connect.", check=positive)
    tls_timeout: float = setting(10.0, "Seconds to wait for a TLS handshake.", check=positive)
    http_timeout: float = setting(15.0, "Seconds to wait for an HTTP response.", check=positive)
    control_timeout: float = setting(30.0, "Seconds to wait for the control helper.",
                                     check=positive)
    body_limit: int = setting(1024 * 1024, "Bytes of a response body to read and keep.",
                              check=positive)
    throughput_bytes: int = setting(
        2 * 1024 * 1024, "Bytes of a body to count in all, past body_limit, for its rate "
        "(docs/outcomes.md, Throttling).", check=positive)
    throughput_seconds: float = setting(
        5.0, "Seconds a body is counted, past body_limit, for its rate (never past http_timeout).",
        check=positive)
    concurrency: int = setting(20, "URLs measured at the same time.", check=positive)
    per_host_limit: int = setting(2, "URLs of one host measured at the same time.",
                                  check=positive)

    def to_probe_options(self) -> ProbeOptions:
        return ProbeOptions(
            identity=ProbeIdentity(probe_cc=self.cc, probe_asn=self.asn,
                                   probe_network_name=self.network_name,
                                   vantage_id=self.vantage_id),
            resolvers=self.resolvers,
            helper_url=self.helper_url,
            helper_token=self.helper_token,
            source_address=self.source_address,
            dns_timeout=self.dns_timeout,
            connect_timeout=self.connect_timeout,
            tls_timeout=self.tls_timeout,
            http_timeout=self.http_timeout,
            control_timeout=self.control_timeout,
            body_limit=self.body_limit,
            throughput_bytes=self.throughput_bytes,
            throughput_seconds=self.throughput_seconds,
            lab_public_ranges=self.lab_public_ranges,
            ca_file=self.ca_file,
            asn_database=self.asn_database or None,
            extra_fingerprints=self.extra_fingerprints or None,
        )


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """[storage]: where measurements and states are kept."""

    data_dir: str = setting("./blockmon-data", "Directory for the database and other local data "
                            "(in a settings file, relative to the file's directory).",
                            starter=True)
    database: str | None = setting(
        None, "Database URL: sqlite:///PATH or postgresql://...; "
        "unset = sqlite:///<data_dir>/blockmon.db.", check=database_scheme, example='"postgresql://blockmon@localhost/blockmon"')
    retention_days: int = setting(
        0, "Delete measurements older than this many days (0 = keep forever).",
        check=not_negative)

    def retention_cutoff(self, now: datetime) -> datetime | None:
        """Measurements older than this may be pruned; None when kept forever."""
        if self.retention_days == 0:
            return None
        return now - timedelta(days=self.retention_days)

    @property
    def database_url(self) -> str:
        if self.database is not None:
            return self.database
        return f"sqlite:///{Path(self.data_dir) / 'blockmon.db'}"


@dataclass(frozen=True, slots=True)
class TargetsSettings:
    """[targets]: what to measure."""

    registry: str | None = setting(
        None, "Target registry TOML file; unset = the registry shipped in targets/registry.toml.", example='"./my-registry.toml"')
    lists: tuple[str, ...] = setting(("briefing",), "Names of the target lists to measure.",
                                     check=list_names, starter=True)

    @property
    def registry_path(self) -> Path:
        if self.registry is not None:
            return Path(self.registry)
        return Path(__file__).resolve().parents[2] / "targets" / "registry.toml"


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """[schedule]: when to measure and how to confirm anomalies."""

    interval_minutes: int = setting(60, "Minutes between two rounds over the lists (at most a "
                                    "year).", check=within(1, 525_600), starter=True)
    cron: str | None = setting(None, "Crontab expression (UTC) for the rounds; overrides "
                               "interval_minutes.", check=crontab, example='"0 * * * *"')
    jitter_seconds: int = setting(30, "Random delay of up to this many seconds per round, so "
                                  "probes do not measure in lockstep (at most a day).",
                                  check=within(0, 86_400))
    confirm_retests: int = setting(2, "Re-tests of an anomalous URL before it counts as blocked.",
                                   check=not_negative)
    confirm_delay_seconds: int = setting(30, "Seconds between an anomaly and its re-test (at "
                                         "most a day).", check=within(0, 86_400))
    watch_windows: tuple[WatchWindow, ...] = setting(
        (), "Periods of closer watching: list of {start, end, interval_minutes, lists} with "
        "start/end as ISO 8601 UTC times; lists empty = [targets] lists.", check=watch_window_order)

    @property
    def confirmations_needed(self) -> int:
        """Consecutive anomalous results (the scheduled one plus re-tests) that confirm a block."""
        return self.confirm_retests + 1


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """[collector]: uploading to a central collector, or being one."""

    url: str | None = setting(None, "Collector to upload measurements to; unset = keep them "
                              "local only.", check=http_url,
                              example='"https://collector.example.org/"')
    token: str | None = setting(None, "This probe's upload token from the collector.",
                                secret=True, example='"probe-token"')
    enrolment_secret: str | None = setting(
        None, "Collector side: secret a new probe shows to get its token.", secret=True, example='"enrolment-secret"')
    listen: str = setting("127.0.0.1:8470", "Collector side: HOST:PORT to listen on.",
                          check=host_port)
    max_connections_per_client: int = setting(
        256, "Collector side: connections one client address may hold open; more get 503 and "
        "are closed (0 = no cap).", check=not_negative)
    upload_batch: int = setting(500, "Measurements per upload request.", check=positive)
    upload_interval_seconds: int = setting(60, "Seconds between two uploads of the spool.",
                                           check=positive)
    check_in_interval_seconds: int = setting(
        600, "Seconds between two check-ins, which fetch the centrally published target lists "
        "and schedule.", check=positive)
    asn_database: str = setting(
        "", "Collector side: iptoasn.com IP-to-ASN file; a probe registering without an ASN or "
        "country gets them from its address, which is not stored (docs/asn.md); empty = none.",
        check=readable_file)


@dataclass(frozen=True, slots=True)
class ReportsSettings:
    """[reports]: where and how often reports are written."""

    out_dir: str = setting("./blockmon-reports", "Directory reports are written to.")
    weekly: bool = setting(True, "Write a report every Monday for the week before.")
    monthly: bool = setting(True, "Write a report on the 1st for the month before.")
    lists: tuple[str, ...] = setting(
        (), "Also write each weekly and monthly report once per list named here, limited to "
        "that list's targets (into <period>--<list>/).", example='["briefing", "kz"]')
    listen: str = setting("127.0.0.1:8080", "blockmon serve: HOST:PORT the dashboard listens on.",
                          check=host_port)
    operator_token: str | None = setting(
        None, "Bearer token for dashboard actions that change something (generate a report "
        "now); unset = such actions are refused.", secret=True, example='"operator-token"')


@dataclass(frozen=True, slots=True)
class AlertsSettings:
    """[alerts]: notifications of confirmed changes."""

    enabled: bool = setting(False, "Send alerts on confirmed state changes.")
    kinds: tuple[str, ...] = setting(
        ALERT_KINDS,
        "Alert kinds to send (docs/alerts.md); others are still recorded as incidents.",
        check=alert_kinds)
    lists: tuple[str, ...] = setting(
        (), "Send only alerts about URLs in one of these target lists; empty = every list "
        "(outages, silences and URLs of no known list are always sent; others are still "
        "recorded).", example='["briefing"]')
    check_interval_seconds: int = setting(
        15, "Seconds between two passes of the alert job (rules, then deliveries).",
        check=positive)
    outage_fraction: float = setting(
        0.6, "Share of a vantage's URLs failing, controls included, that makes one outage "
        "alert instead of one alert per target.", check=fraction)
    outage_min_urls: int = setting(3, "Fewest URLs measured at a vantage before it can be "
                                   "called out (down or shut off).", check=positive)
    silence_factor: float = setting(
        2.0, "Collector side: a probe is silent when its last check-in and measurement are "
        "older than this many round intervals.", check=positive)
    dashboard_url: str | None = setting(
        None, "Base URL of the dashboard; alerts link evidence as <url>/api/v1/measurements/<uid>.",
        check=http_url, example='"https://blockmon.example.org"')
    webhook_url: str | None = setting(
        None, "Generic webhook: alerts are POSTed as JSON (schema in docs/alerts.md).",
        check=http_url, example='"https://hooks.example.org/blockmon"')
    webhook_secret: str | None = setting(
        None, "Shared secret: the webhook body is signed (X-Blockmon-Signature: "
        "sha256=HMAC).", secret=True, example='"webhook-secret"')
    slack_url: str | None = setting(
        None, "Slack or Mattermost incoming-webhook URL (text messages).", check=http_url,
        secret=True, example='"https://hooks.slack.com/services/T000/B000/XXXX"')
    smtp_host: str | None = setting(None, "SMTP server for e-mail alerts; unset = no e-mail.",
                                    example='"smtp.example.org"')
    smtp_port: int = setting(587, "SMTP server port.", check=within(1, 65_535))
    smtp_starttls: bool = setting(True, "Upgrade the SMTP connection with STARTTLS.")
    smtp_username: str | None = setting(None, "SMTP login name; unset = no authentication.",
                                        example='"blockmon"')
    smtp_password: str | None = setting(None, "SMTP password.", secret=True,
                                        example='"smtp-password"')
    smtp_ca_file: str | None = setting(
        None, "CA bundle to verify the SMTP server's STARTTLS certificate; unset = system store.",
        example='"/etc/ssl/certs/ca-certificates.crt"')
    email_from: str = setting("blockmon@localhost", "Sender address of alert e-mails.")
    email_to: tuple[str, ...] = setting((), "Recipients of alert e-mails.")
    send_timeout_seconds: float = setting(15.0, "Seconds one delivery attempt may take.",
                                          check=positive)
    retry_base_seconds: int = setting(
        30, "First retry delay of a failed delivery; doubles each attempt.", check=positive)
    retry_max_seconds: int = setting(3600, "Longest delay between two delivery attempts.",
                                     check=positive)
    give_up_hours: int = setting(
        72, "Hours after which an undelivered alert is marked failed (still listed).",
        check=positive)
    digest_threshold: int = setting(
        5, "More alerts than this due at once on one channel are sent as one digest.",
        check=positive)
    max_messages_per_hour: int = setting(
        30, "Messages (alerts or digests) one channel sends per hour at most; beyond that, "
        "due alerts wait and then go out together as one digest.", check=positive)
    metrics_listen: str | None = setting(
        None, "HOST:PORT for a Prometheus /metrics endpoint of `blockmon run`; the collector "
        "serves /metrics on its own port.", check=host_port, example='"127.0.0.1:9470"')


@dataclass(frozen=True, slots=True)
class OoniSettings:
    """[ooni]: measurements imported from OONI (`blockmon ooni import`, docs/ooni.md)."""

    alerts: bool = setting(False, "Let states moved by imported OONI measurements raise alerts.")
    api_url: str = setting("https://api.ooni.io", "Base URL of OONI's measurement API "
                           "(`blockmon ooni import --api`).", check=http_url)
    api_interval_seconds: float = setting(1.0, "Seconds between two requests to OONI's API "
                                          "(be polite).", check=not_negative)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything blockmon is configured with; load once with load_settings() and pass down."""

    probe: ProbeSettings = field(default_factory=ProbeSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    targets: TargetsSettings = field(default_factory=TargetsSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    reports: ReportsSettings = field(default_factory=ReportsSettings)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    ooni: OoniSettings = field(default_factory=OoniSettings)
    # Where the settings came from (None = defaults and environment only); for messages.
    source: str | None = None


SECTIONS: dict[str, type] = {
    name: hint for name, hint in typing.get_type_hints(Settings).items() if name != "source"
}


def knobs_from(kind: type[Knobs], section: DataclassInstance) -> Knobs:
    """A consumer's dataclass of knobs (RuleConfig, DeliveryPolicy) filled from the same-named
    keys of its settings section, so neither restates the other's keys or defaults."""
    return kind(**{knob.name: getattr(section, knob.name) for knob in dataclasses.fields(kind)})
