"""Field checks shared by the registry and the test-list importer: each returns a problem or None."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$")

MAX_QUOTE_LENGTH = 400  # "short quotations" only: one or two sentences of the briefing


def url_problem(url: str) -> str | None:
    """Why this is not an http(s) URL that a probe can measure, or None."""
    if not url:
        return "empty URL"
    if url != url.strip() or any(character.isspace() for character in url):
        return f"URL contains whitespace: {url!r}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return f"malformed URL {url!r} ({error})"
    if parts.scheme not in ("http", "https"):
        return f"URL scheme must be http or https: {url!r}"
    host = parts.hostname
    if not host:
        return f"URL has no host: {url!r}"
    if port == 0:
        return f"URL has port 0: {url!r}"
    labels = host.rstrip(".").split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        return f"URL host {host!r} is not a valid hostname: {url!r}"
    return None


def canonical_url(url: str) -> str:
    """The form two URLs are compared in for duplicates: case-folded host, no trailing slash."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = f":{parts.port}" if parts.port else ""
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{parts.scheme.lower()}://{host}{port}{path}{query}{fragment}"


def date_problem(value: str) -> str | None:
    """Dates are YYYY, YYYY-MM or YYYY-MM-DD (precision as known)."""
    match = _DATE.match(value)
    if not match:
        return f"date must be YYYY, YYYY-MM or YYYY-MM-DD: {value!r}"
    month, day = match.group(2), match.group(3)
    if month is not None and not 1 <= int(month) <= 12:
        return f"month out of range in date {value!r}"
    if day is not None and not 1 <= int(day) <= 31:
        return f"day out of range in date {value!r}"
    return None


def ends_before_start(start: str, end: str) -> bool:
    """Whether valid dates of any precision are out of order ("2015-03" .. "2015" is not: the
    year 2015 contains March)."""
    common = min(len(start), len(end))
    return end[:common] < start[:common]


def period_problem(value: str) -> str | None:
    """A period is a date or 'start/end' (either side may be a date of any precision)."""
    parts = value.split("/")
    if len(parts) > 2 or not all(parts):
        return f"period must be a date or START/END dates: {value!r}"
    for part in parts:
        problem = date_problem(part)
        if problem:
            return f"period {value!r}: {problem}"
    if len(parts) == 2 and ends_before_start(parts[0], parts[1]):
        return f"period {value!r} ends before it starts"
    return None


def slug_problem(value: str) -> str | None:
    if not _SLUG.match(value):
        return f"id must be a slug (lower-case letters, digits, hyphens): {value!r}"
    return None


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "target"
