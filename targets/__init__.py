"""Target registry: what to measure, with each target's link to the briefing."""

from targets.citizenlab import import_citizenlab_csv
from targets.model import (
    BriefingClaim,
    Target,
    TargetFileError,
    TargetList,
    TargetURL,
    find_target,
)
from targets.registry import load_registry
from targets.storage import load_list, save_list

__all__ = [
    "BriefingClaim",
    "Target",
    "TargetFileError",
    "TargetList",
    "TargetURL",
    "find_target",
    "import_citizenlab_csv",
    "load_list",
    "load_registry",
    "save_list",
]
