"""The docs keep their promises: links resolve, named tests exist, every command is documented."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = {path.name: path.read_text(encoding="utf-8") for path in (ROOT / "docs").glob("*.md")}


def test_every_local_link_of_the_readme_and_docs_resolves() -> None:
    broken = []
    for name, text in [("README.md", README)] + [(f"docs/{n}", t) for n, t in DOCS.items()]:
        base = ROOT if name == "README.md" else ROOT / "docs"
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (base / target).exists():
                broken.append(f"{name} -> {target}")
    assert broken == []


def test_tests_named_in_evidence_exist() -> None:
    missing = []
    for path, name in re.findall(r"`?(tests/[\w/]+\.py)(?:::(\w+))?", DOCS["evidence.md"]):
        file = ROOT / path
        if not file.exists():
            missing.append(path)
        elif name and f"def {name}" not in file.read_text(encoding="utf-8"):
            missing.append(f"{path}::{name}")
    for short_file, name in re.findall(r"`(test_\w+\.py)::(\w+)`", DOCS["evidence.md"]):
        if f"def {name}" not in (ROOT / "tests" / short_file).read_text(encoding="utf-8"):
            missing.append(f"{short_file}::{name}")
    assert missing == []


def test_every_subcommand_is_documented() -> None:
    everything = README + "".join(DOCS.values())
    undocumented = [name for name in SUBCOMMANDS if f"blockmon {name}" not in everything]
    assert undocumented == []


def test_readme_leads_with_the_two_setup_commands() -> None:
    setup = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert "make demo" in setup and "make test" in setup
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
