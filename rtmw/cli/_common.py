"""What every rtmw command shares: one option vocabulary, one exit-code table, logging
and one-line errors. Commands declare their options through the helpers here, so the
same thing has the same flag everywhere (tests/test_cli.py holds them to it)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from rtmw.errors import EXIT_MEANINGS, ExitCode, RtmwError

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

# rtmw.export.quant_policy.POLICIES, spelled here so that --help does not import torch
# (tests/test_int8.py holds the two equal).
INT8_POLICY_CHOICES = ("head-fp32", "head-neck-fp32", "none")
# what rtmw-export also takes: a search for the fastest policy within every part's budget
INT8_POLICY_SEARCH = "auto"

# The exit codes of every rtmw command (README's table is this one): rtmw.errors' table.
EXIT_CODES: dict[int, str] = {int(code): text for code, text in EXIT_MEANINGS.items()}

# One flag per concept, in every command that has the concept. Older spellings still
# parse (hidden in --help) so that scripts keep working.
VOCABULARY: dict[str, tuple[str, ...]] = {
    "image_dir": ("--images", "--data"),
    "ann_file": ("--ann",),
    "det_file": ("--dets", "--boxes"),
    "limit": ("--limit",),
    "calib": ("--calib",),
    "int8_policy": ("--int8-policy",),
    "targets": ("--targets",),
    "out": ("--out",),
    "seed": ("--seed",),
    "threads": ("--threads",),
    "batch": ("--batch",),  # inference batch sizes, comma-separated
    "batch_size": ("--batch-size",),  # rtmw-train's mini-batch (bench's --batch is a list)
    "quiet": ("-q", "--quiet"),
    "verbose": ("-v", "--verbose"),
}


def exit_code_epilog(meaning_of_one: str = "", meaning_of_zero: str = "") -> str:
    """The exit-code table for a command's --help (click keeps \\b blocks as written)."""
    lines = [f"  {code:<3} {text}" for code, text in EXIT_CODES.items()]
    if meaning_of_zero:
        lines[0] = f"  0   {meaning_of_zero}"
    if meaning_of_one:
        lines[1] = f"  1   {meaning_of_one}"
    return "\n\n\b\nExit codes:\n" + "\n".join(lines)


class _VocabularyOption(click.Option):
    """Shows only its canonical flag in --help; older spellings stay accepted."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        every = self.opts
        self.opts = every[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = every


def vocab_option(concept: str, **kwargs: Any) -> Callable[[F], F]:
    """``click.option`` for one concept of :data:`VOCABULARY`."""
    flags = VOCABULARY[concept]
    if concept in ("quiet", "verbose"):
        return click.option(*flags, concept, **kwargs)
    return click.option(*flags, concept, cls=_VocabularyOption, **kwargs)


def data_options(func: F) -> F:
    """--images/--ann/--dets/--limit: the evaluation data, as every command names it."""
    for decorator in reversed(
        (
            vocab_option("image_dir", type=click.Path(file_okay=False), help="Image folder."),
            vocab_option("ann_file", type=click.Path(dir_okay=False), help="COCO-WholeBody JSON."),
            vocab_option(
                "det_file",
                type=click.Path(dir_okay=False),
                help="Person detections (COCO results JSON); default: ground-truth boxes.",
            ),
            vocab_option(
                "limit",
                type=click.IntRange(min=1),
                default=None,
                help="Evaluate the first N images only.",
            ),
        )
    ):
        func = decorator(func)
    return func


def int8_policy_option(func: F) -> F:
    return vocab_option(
        "int8_policy",
        type=click.Choice(INT8_POLICY_CHOICES),
        default="head-fp32",
        show_default=True,
        help="Which layers INT8 targets keep in float: the SimCC head (ScaleNorm, GAU, "
        "classifiers), also the neck (narrow models), or none.",
    )(func)


def int8_policy_search_option(func: F) -> F:
    """rtmw-export's --int8-policy: the named policies, or 'auto' (the search)."""
    return vocab_option(
        "int8_policy",
        type=click.Choice([*INT8_POLICY_CHOICES, INT8_POLICY_SEARCH]),
        default="head-fp32",
        show_default=True,
        help="Which layers INT8 targets keep in float: the SimCC head (ScaleNorm, GAU, "
        "classifiers), also the neck (narrow models), none; or 'auto': search for the "
        "fastest policy that keeps every body part within its budget (needs --eval-images, "
        "--eval-ann).",
    )(func)


def setup_logging(verbose: int, quiet: bool = False) -> None:
    """Ours on the console, third-party libraries' in the run log (rtmw.logs)."""
    from rtmw.logs import setup_logging as setup

    setup(verbose, quiet)


def log_run_in(folder: str | Path, command: str) -> Path:
    """Third-party libraries' records and native output of this run go to
    ``folder/command.log`` (the console keeps ours)."""
    from rtmw.logs import attach_run_log, detach_run_log

    path = attach_run_log(Path(folder) / f"{command}.log")
    context = click.get_current_context(silent=True)
    if context is not None:  # the log ends with the command, also inside a longer process
        context.call_on_close(lambda: detach_run_log(path))
    return path


def verbosity(func: Callable[P, R]) -> Callable[P, R]:
    """-q/--quiet and -v/--verbose on a command: sets logging up before the command runs;
    the command receives ``quiet`` (no progress bars) and not ``verbose``."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        verbose = int(kwargs.pop("verbose", 0) or 0)  # type: ignore[call-overload]
        setup_logging(verbose, bool(kwargs.get("quiet", False)))
        return func(*args, **kwargs)

    with_quiet = vocab_option("quiet", is_flag=True, help="Only results and errors; no progress.")
    with_verbose = vocab_option("verbose", count=True, help="More logging (-vv for debug).")
    return with_quiet(with_verbose(one_line_errors(wrapper)))


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
            sys.exit(ExitCode.INTERRUPTED)

    return wrapper


def status_summary(rows: list[tuple[str, str, str]]) -> str:
    """'10 ok, 1 failed: openvino-fp16 — reason': every status counted, none hidden."""
    counts: dict[str, int] = {}
    for _, status, _ in rows:
        counts[str(status)] = counts.get(str(status), 0) + 1
    order = sorted(counts, key=lambda s: (s != "ok", s))
    text = ", ".join(f"{counts[s]} {s}" for s in order)
    bad = [f"{name} — {reason}" for name, status, reason in rows if str(status) == "failed"]
    return text + (": " + "; ".join(bad) if bad else "")
