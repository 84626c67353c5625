"""What every rtmw command shares: logging set-up and one-line errors."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from rtmw.errors import RtmwError

P = ParamSpec("P")
R = TypeVar("R")

# rtmw.export.quant_policy.POLICIES, spelled here so that --help does not import torch
# (tests/test_int8.py holds the two equal).
INT8_POLICY_CHOICES = ("head-fp32", "head-neck-fp32", "none")


def setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn RtmwError into 'error: …' on stderr and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except RtmwError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)

    return wrapper


def status_summary(rows: list[tuple[str, str, str]]) -> str:
    """'10 ok, 1 failed: openvino-fp16 — reason': every status counted, none hidden."""
    counts: dict[str, int] = {}
    for _, status, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    order = sorted(counts, key=lambda s: (s != "ok", s))
    text = ", ".join(f"{counts[s]} {s}" for s in order)
    bad = [f"{name} — {reason}" for name, status, reason in rows if status == "failed"]
    return text + (": " + "; ".join(bad) if bad else "")
