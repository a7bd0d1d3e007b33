"""The documentation holds together: the README stays short, every relative link in it
and in docs/ leads to a file, every Markdown table has as many cells in each row as in
its header, and every ``meprop-bench COMMAND`` the README names is a real command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meprop_bench.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "reports" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
COMMAND = re.compile(r"\bmeprop-bench[ \t]+([a-z][a-z0-9-]*)")


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def code(text: str) -> str:
    """Only the fenced code blocks and inline code spans of ``text``."""
    spans = [m.group(0) for m in FENCE.finditer(text)]
    spans += [m.group(0) for m in INLINE_CODE.finditer(FENCE.sub("", text))]
    return "\n".join(spans)


def test_readme_is_at_most_200_lines():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(page: Path):
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on the same page
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_tables_have_as_many_cells_as_their_header(page: Path):
    def cells(row: str) -> int:
        row = INLINE_CODE.sub("x", row).replace("\\|", "x").strip()
        return len(row.strip("|").split("|"))

    bad = []
    lines = FENCE.sub("", page.read_text(encoding="utf-8")).splitlines()
    for i, line in enumerate(lines[:-1]):
        if not re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", lines[i + 1].strip()):
            continue  # not a header row
        width = cells(line)
        if cells(lines[i + 1]) != width:
            bad.append(f"line {i + 1}: header and separator differ")
        for row in lines[i + 2 :]:
            if not row.strip().startswith("|"):
                break
            if cells(row) != width:
                bad.append(f"{row[:60]!r}: {cells(row)} cells, header {width}")
    assert not bad, f"{page.relative_to(ROOT)}: {bad}"


def test_readme_names_only_real_commands():
    named = set(COMMAND.findall(code(README.read_text(encoding="utf-8"))))
    assert named, "the README names no meprop-bench command"
    assert named <= set(COMMANDS), f"not commands: {sorted(named - set(COMMANDS))}"


def test_readme_lists_every_command():
    named = set(COMMAND.findall(code(README.read_text(encoding="utf-8"))))
    assert set(COMMANDS) <= named, f"README leaves out: {sorted(set(COMMANDS) - named)}"
