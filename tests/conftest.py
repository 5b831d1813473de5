"""Loads every fixture module in tests/fixtures/ so each area keeps its fixtures in its own file."""

from __future__ import annotations

import pkgutil
from pathlib import Path

_FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = [
    f"tests.fixtures.{info.name}"
    for info in pkgutil.iter_modules([str(_FIXTURES)])
    if not info.name.startswith("_")
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"
