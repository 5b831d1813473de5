"""Pure: a Report as JSON (every field of the model; times as the store writes them)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from reports.build import Report

FORMAT_VERSION = 1


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {"|".join(key) if isinstance(key, tuple) else str(key): _plain(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def report_document(report: Report) -> dict[str, Any]:
    document = _plain(report)
    document["period"]["days"] = report.period.days
    return {"format_version": FORMAT_VERSION, **document}


def render_json(report: Report) -> str:
    return json.dumps(report_document(report), indent=2, ensure_ascii=False) + "\n"
