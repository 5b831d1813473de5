"""The target dataclasses and their closed vocabularies (URL roles, briefing claim kinds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# What a URL is to its outlet: the lineage lets a report tell "blocked" from "moved" from "dead".
UrlRole = Literal["home", "content", "former", "current", "mirror"]
URL_ROLES: Final[tuple[str, ...]] = UrlRole.__args__  # type: ignore[attr-defined]

# What the briefing says about the target.
ClaimKind = Literal[
    "site_blocked", "content_blocked", "blocking_threatened", "outlet_closed", "persecuted"
]
CLAIM_KINDS: Final[tuple[str, ...]] = ClaimKind.__args__  # type: ignore[attr-defined]

BRIEFING_LIST_NAME: Final = "briefing"


@dataclass(frozen=True)
class TargetURL:
    url: str
    role: str
    since: str | None = None
    until: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class BriefingClaim:
    section: str
    quote: str
    line: int
    period: str
    claim: str


@dataclass(frozen=True)
class Target:
    id: str
    name: str
    category_code: str
    urls: tuple[TargetURL, ...]
    briefing: BriefingClaim | None
    control: bool
    list_name: str
    notes: str | None = None
    # A large resource of the target to measure the rate on (a home page is often too small),
    # and a neutral URL on the same CDN or prefix to compare it with (docs/outcomes.md).
    throughput_url: str | None = None
    baseline_url: str | None = None
    # Measurements of each URL per round: more than one gives a k-of-n record at once, for a
    # target known to be blocked intermittently (monitor/state.py).
    repeats: int = 1

    def url_list(self) -> list[str]:
        return [target_url.url for target_url in self.urls]

    def urls_with_role(self, role: str) -> list[TargetURL]:
        return [target_url for target_url in self.urls if target_url.role == role]


@dataclass(frozen=True)
class TargetList:
    name: str
    targets: tuple[Target, ...]

    def controls(self) -> tuple[Target, ...]:
        return tuple(target for target in self.targets if target.control)

    def throughput_baselines(self) -> tuple[str, ...]:
        """The control targets' throughput URLs: the vantage's same-network rate baseline."""
        return tuple(t.throughput_url for t in self.controls() if t.throughput_url)


def find_target(targets: TargetList | tuple[Target, ...] | list[Target], id_or_url: str) -> Target | None:
    """The target with this id, or the first one measuring this URL (trailing slash ignored)."""
    candidates = targets.targets if isinstance(targets, TargetList) else targets
    for target in candidates:
        if target.id == id_or_url:
            return target
    wanted = id_or_url.rstrip("/")
    for target in candidates:
        if any(url.rstrip("/") == wanted for url in target.url_list()):
            return target
    return None


class TargetFileError(ValueError):
    """A problem in a target file or test list; str() is one line naming file, place and value."""

    def __init__(
        self,
        file: str,
        message: str,
        *,
        line: int | None = None,
        row: int | None = None,
        key: str | None = None,
        value: object = None,
    ) -> None:
        self.file = file
        self.message = message
        self.line = line
        self.row = row
        self.key = key
        self.value = value
        super().__init__(str(self))

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.row is not None:
            place += f": row {self.row}"
        return f"{place}: {self.message}"
