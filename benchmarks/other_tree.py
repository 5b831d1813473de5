"""A module of another tree (an export of an older commit) loaded beside this tree's, so that a
benchmark can interleave the old and the new code in one process."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(tree: Path, relative: str, name: str) -> ModuleType:
    """`relative` of another tree as module `name` (its imports resolve in this tree)."""
    spec = importlib.util.spec_from_file_location(name, tree / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
