"""The README's contents list: every section is in it, in the README's order, and every link
in it leads to a heading (GitHub's anchors: lower case, spaces to hyphens, punctuation
dropped) — a section added without its line, or renamed, fails here."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def _anchor(title: str) -> str:
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def _headings(text: str, level: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # a "## " inside a code block is not one
    return re.findall(rf"^{level} (.+)$", text, re.M)


def test_the_contents_list_every_section_in_order_and_lead_somewhere() -> None:
    text = README.read_text()
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\[[^\]]+\]\(#([^)]+)\)", contents)
    sections = [h for h in _headings(text, "##") if h != "Contents"]
    anchors = {_anchor(h) for h in sections + _headings(text, "###")}
    assert not [a for a in links if a not in anchors], "links to no heading"
    listed = [a for a in links if a in {_anchor(s) for s in sections}]
    assert listed == [_anchor(s) for s in sections], "every section, in the README's order"
