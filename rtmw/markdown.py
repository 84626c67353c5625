"""Markdown tables whose cells cannot break the table (reasons and paths hold '|')."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def cell(value: object) -> str:
    """One cell: pipes escaped, line breaks folded (a failure reason may hold both)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines
