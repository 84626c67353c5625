"""Markdown tables whose cells cannot break the table (reasons and paths hold '|').

Rendering is tabulate's GitHub-flavoured pipe table (cells unpadded, so rows stay
greppable); what tabulate does not do, escaping a '|' inside a cell and folding line
breaks, is done here. Every table rtmw writes (results, gates, sensitivity) comes from
:func:`table`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tabulate import tabulate


def cell(value: object) -> str:
    """One cell: pipes escaped, line breaks folded (a failure reason may hold both)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    text = tabulate(
        [[cell(v) for v in row] for row in rows],
        headers=[cell(h) for h in header],
        tablefmt="github",
        disable_numparse=True,  # figures are formatted by the caller, never re-parsed
        stralign=None,
        numalign=None,
    )
    return str(text).splitlines()
