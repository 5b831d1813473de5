"""Finds the line of each key in a registry TOML file, since tomllib reports no positions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")

# A place in the registry: ("list",), ("target", i), ("url", i, j) or ("briefing", i).
Place = tuple[object, ...]


@dataclass
class TomlLines:
    """Line numbers of table headers and keys, addressed by Place (0-based indexes)."""

    headers: dict[Place, int] = field(default_factory=dict)
    keys: dict[tuple[Place, str], int] = field(default_factory=dict)
    top_level_keys: dict[str, int] = field(default_factory=dict)

    def line_of(self, place: Place, key: str | None = None) -> int | None:
        if key is not None:
            if place == ():
                found = self.top_level_keys.get(key)
            else:
                found = self.keys.get((place, key))
            if found is not None:
                return found
        return self.headers.get(place)


def locate_toml_lines(text: str) -> TomlLines:
    """Scan the registry layout ([list], [[target]], [[target.url]], [target.briefing])."""
    located = TomlLines()
    place: Place = ()
    target_index = -1
    url_index = -1
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header:
            name = header.group(2)
            is_array = header.group(1) == "[["
            if name == "target" and is_array:
                target_index += 1
                url_index = -1
                place = ("target", target_index)
            elif name == "target.url" and is_array:
                url_index += 1
                place = ("url", target_index, url_index)
            elif name == "target.briefing":
                place = ("briefing", target_index)
            else:
                place = (name,)
            located.headers.setdefault(place, number)
            continue
        key = _KEY.match(line)
        if key:
            name = key.group(1).strip('"')
            if place == ():
                located.top_level_keys.setdefault(name, number)
            else:
                located.keys.setdefault((place, name), number)
            for quotes in ('"""', "'''"):
                if line.count(quotes) % 2 == 1:
                    in_multiline = quotes
    return located
