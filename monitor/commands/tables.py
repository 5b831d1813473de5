"""Output helpers the read commands share: CSV and when a table counts as long."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Past this many rows a table repeats its per-state counts above itself, not only below.
LONG_TABLE = 20


def render_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """RFC 4180 CSV with a header line; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(column) is None else row.get(column)
                         for column in columns])
    return out.getvalue()
