"""Matches the registry's quotations and section titles against the briefing text (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The briefing lives beside the project, not in it (only short quotations may enter the project).
DEFAULT_BRIEFING_PATH = PROJECT_ROOT.parent / "shared" / "briefing" / "kazakhstan-briefing-2015.txt"


@dataclass(frozen=True)
class BriefingText:
    """The briefing with whitespace collapsed, remembering each character's original line."""

    normalized: str
    line_of_char: tuple[int, ...]
    lines_by_text: dict[str, tuple[int, ...]]

    def quote_lines(self, quote: str) -> list[int]:
        """Lines on which the quotation starts (empty when it is not in the text)."""
        wanted = normalize_whitespace(quote)
        if not wanted:
            return []
        found: list[int] = []
        start = self.normalized.find(wanted)
        while start != -1:
            found.append(self.line_of_char[start])
            start = self.normalized.find(wanted, start + 1)
        return found

    def section_lines(self, section: str) -> tuple[int, ...]:
        """Lines whose whole text is this section title."""
        return self.lines_by_text.get(normalize_whitespace(section), ())


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def build_briefing_text(text: str) -> BriefingText:
    characters: list[str] = []
    lines: list[int] = []
    lines_by_text: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = normalize_whitespace(line)
        if not stripped:
            continue
        lines_by_text.setdefault(stripped, []).append(number)
        if characters:
            # The PDF-to-text conversion breaks words after a hyphen ("Kiev-" / "based"):
            # join those, put one space at every other line break.
            if characters[-1] != "-":
                characters.append(" ")
                lines.append(number)
        for character in stripped:
            characters.append(character)
            lines.append(number)
    return BriefingText(
        normalized="".join(characters),
        line_of_char=tuple(lines),
        lines_by_text={key: tuple(value) for key, value in lines_by_text.items()},
    )


def load_briefing(path: str | Path) -> BriefingText:
    return build_briefing_text(Path(path).read_text(encoding="utf-8"))
