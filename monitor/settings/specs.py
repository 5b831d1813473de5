"""Every settings key as a SettingSpec, derived from the section dataclasses (for load and docs)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from monitor.settings.sections import SECTIONS, Check

ENV_PREFIX = "BLOCKMON_"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One documented key, derived from the section dataclasses."""

    section: str
    key: str
    kind: Any
    default: Any
    help: str
    secret: bool
    starter: bool
    check: Check | None
    example: str | None

    @property
    def env_var(self) -> str:
        return f"{ENV_PREFIX}{self.section.upper()}_{self.key.upper()}"


def setting_specs() -> list[SettingSpec]:
    """Every key of every section, in declaration order."""
    specs = []
    for section, section_type in SECTIONS.items():
        hints = typing.get_type_hints(section_type)
        defaults = section_type()
        for f in dataclasses.fields(section_type):
            specs.append(SettingSpec(
                section=section, key=f.name, kind=hints[f.name],
                default=getattr(defaults, f.name), help=f.metadata["help"],
                secret=f.metadata["secret"], starter=f.metadata["starter"],
                check=f.metadata["check"], example=f.metadata["example"]))
    return specs
