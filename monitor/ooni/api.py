"""OONI's measurement API (api.ooni.io /api/v1/measurements): list pages, fetch each raw measurement.

Polite: one request at a time, `interval` seconds apart. Resumable: with a cursor file, the URL of
the page being imported is kept there until the import ends, so an interrupted run starts again
at that page (measurements already stored are recognised by uid and stored once).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from probes import __version__

PAGE_SIZE = 100
TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ApiQuery:
    probe_cc: str | None = None
    probe_asn: str | None = None
    since: str | None = None
    until: str | None = None
    inputs: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    limit: int | None = None

    def list_urls(self, base_url: str) -> list[str]:
        """The first page of each query: one per --url or --domain (the API takes one each)."""
        common: dict[str, str] = {"test_name": "web_connectivity", "limit": str(PAGE_SIZE),
                                  "order_by": "measurement_start_time", "order": "asc"}
        for key in ("probe_cc", "probe_asn", "since", "until"):
            value = getattr(self, key)
            if value:
                common[key] = value
        variants = [{"input": url} for url in self.inputs] + [{"domain": d} for d in self.domains]
        endpoint = base_url.rstrip("/") + "/api/v1/measurements"
        return [f"{endpoint}?{urlencode({**common, **extra})}" for extra in variants or [{}]]


class ApiError(Exception):
    """OONI's API could not be read; the message names the URL."""


def _same_origin(url: str, base_url: str) -> bool:
    # Follow only the configured API's own links: a page cannot send the importer elsewhere.
    first, second = urlsplit(url), urlsplit(base_url)
    return (first.scheme, first.netloc) == (second.scheme, second.netloc)


class _Client:
    def __init__(self, base_url: str, interval: float) -> None:
        self.base_url = base_url
        self.interval = interval
        self._last = 0.0

    def get_json(self, url: str) -> Any:
        if not _same_origin(url, self.base_url):
            raise ApiError(f"{url}: not on {self.base_url}; refused")
        wait = self._last + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        request = urllib.request.Request(url, headers={
            "User-Agent": f"blockmon/{__version__} (ooni import)", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise ApiError(f"{url}: HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise ApiError(f"{url}: {getattr(error, 'reason', error)}") from None
        finally:
            self._last = time.monotonic()
        try:
            return json.loads(body)
        except json.JSONDecodeError as error:
            raise ApiError(f"{url}: not JSON ({error.msg})") from None


def fetch_measurements(
    base_url: str, query: ApiQuery, *, interval: float = 1.0, cursor_path: str | None = None,
    on_error: Callable[[str, str], None] = lambda _place, _error: None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each raw measurement the query lists, as ("api:<uid>", measurement); a measurement that
    cannot be fetched is reported with on_error and skipped; a list page that cannot be read
    ends the import with ApiError (the cursor then points at it)."""
    client = _Client(base_url, interval)
    cursor = Path(cursor_path) if cursor_path else None
    pages = query.list_urls(base_url)
    if cursor is not None and cursor.exists():
        saved = json.loads(cursor.read_text(encoding="utf-8"))
        if saved.get("first_pages") == pages:
            pages = [saved["page"], *saved.get("remaining", [])]
    first_pages = query.list_urls(base_url)
    count = 0
    while pages:
        page_url, remaining = pages[0], pages[1:]
        if cursor is not None:
            cursor.write_text(json.dumps({"first_pages": first_pages, "page": page_url,
                                          "remaining": remaining}), encoding="utf-8")
        page = client.get_json(page_url)
        results = page.get("results") if isinstance(page, dict) else None
        if not isinstance(results, list):
            raise ApiError(f"{page_url}: no results list")
        for result in results:
            if query.limit is not None and count >= query.limit:
                break
            uid = str(result.get("measurement_uid") or "")
            raw_url = result.get("measurement_url") or (
                f"{base_url.rstrip('/')}/api/v1/raw_measurement?{urlencode({'measurement_uid': uid})}")
            try:
                measurement = client.get_json(str(raw_url))
            except ApiError as error:
                on_error(f"api:{uid}", str(error))
                continue
            if not isinstance(measurement, dict):
                on_error(f"api:{uid}", "not a measurement")
                continue
            count += 1
            yield f"api:{uid}", measurement
        next_url = (page.get("metadata") or {}).get("next_url")
        if next_url and (query.limit is None or count < query.limit):
            pages = [str(next_url), *remaining]
        else:
            pages = remaining
    if cursor is not None and cursor.exists():
        cursor.unlink()
