"""``rtmw-demo``: the whole product on the embedded demo model and synthetic data."""

from __future__ import annotations

from pathlib import Path

import click

from rtmw.cli._common import exit_code_epilog, log_run_in, verbosity, vocab_option
from rtmw.errors import ExitCode


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Examples:\n\n\b\n  rtmw-demo --out results/demo\n"
    "  rtmw-demo --all --out results/demo-full   # every target, LiteRT and ExecuTorch too\n"
    "  rtmw-demo --3d --out results/demo-3d   # RTMW3D: MPJPE per part and the 3D gate\n"
    "  rtmw-demo --search-int8 --out results/policy-search   # each INT8 target's policy"
    + exit_code_epilog(
        "a target this machine should build did not build or run",
        "the demo ran end to end; the gate's verdict, pass or fail, is in its closing lines",
    ),
)
@vocab_option(
    "out", default="results/demo", show_default=True, type=click.Path(file_okay=False),
    help="Results folder.",
)  # fmt: skip
# 200 = DemoSettings.val_images (spelled here so that --help does not import torch)
@click.option("--val-images", default=200, show_default=True, help="Validation images.")
@click.option(
    "--seconds", type=float, default=None,
    help="Timing seconds per repeat [default: 0.5, with --all 1.0].",
)  # fmt: skip
@click.option(
    "--calib-seed", default=0, show_default=True, help="Seed of the calibration-set sampling."
)
@click.option(
    "--all",
    "full",
    is_flag=True,
    help="Every target (18, ~18 min) instead of the quick representative set (~4 min).",
)
@click.option(
    "--3d", "three_d", is_flag=True,
    help="The RTMW3D demo model on synthetic 3D figures (MPJPE per part, 3D gate).",
)  # fmt: skip
@click.option(
    "--search-int8", is_flag=True,
    help="Instead of the demo: search every INT8 target's fastest policy within every "
    "part's budget on the demo model (writes chosen.json, summary.md, one table per target).",
)  # fmt: skip
@click.option(
    "--search-seconds", type=click.FloatRange(min=1), default=900, show_default=True,
    help="--search-int8: time budget per target.",
)  # fmt: skip
@click.option(
    "--search-targets", default="", help="--search-int8: comma list (default: every INT8 "
    "target this machine builds).",
)  # fmt: skip
@verbosity
def main(
    out: str,
    val_images: int,
    seconds: float | None,
    calib_seed: int,
    full: bool,
    three_d: bool,
    search_int8: bool,
    search_seconds: float,
    search_targets: str,
    quiet: bool,
) -> None:
    """Run the whole product on the embedded demo model and synthetic data."""
    from rtmw.workflows.demo import DemoSettings, run_demo, search_demo_policies

    if search_int8:
        log_run_in(out, "rtmw-demo")
        wanted = [t.strip() for t in search_targets.split(",") if t.strip()] or None
        status = search_demo_policies(Path(out), images=val_images, seconds=search_seconds,
                                      targets=wanted, say=click.echo)  # fmt: skip
        raise SystemExit(status)

    settings = DemoSettings(val_images=val_images, seconds=seconds, calib_seed=calib_seed,
                            three_d=three_d, full=full)  # fmt: skip
    log_run_in(out, "rtmw-demo")
    status = run_demo(Path(out), settings, say=click.echo)
    # the demo succeeded when every target it should build was built and benchmarked; the
    # gate's verdict is one of its results (its closing lines say it in words), not its
    # exit status
    if status == 2:
        raise SystemExit(ExitCode.FAILED)


if __name__ == "__main__":
    main()
