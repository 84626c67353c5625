"""``rtmw-zoo``: the registered models, and official checkpoints pulled from mirrors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rtmw.cli._common import exit_code_epilog, verbosity, vocab_option

DEFAULT_DIR = Path("~/.cache/rtmw/checkpoints")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The model zoo: list what rtmw knows, pull official checkpoints."""


@main.command("list", epilog="Example:\n\n\b\n  rtmw-zoo list")
@verbosity
def list_command(quiet: bool) -> None:
    """Every registered model (pose models, then person detectors), its official file and
    what is known of its sha256."""
    from rtmw.models.rtmdet import DETECTOR_ZOO
    from rtmw.models.zoo import ZOO

    entries: list[tuple[str, Any]] = [*ZOO.items(), *DETECTOR_ZOO.items()]
    for name, config in entries:
        official = config.official
        if official is None:
            known = "no official file"
        elif official.sha256:
            known = f"sha256 {official.sha256[:16]}… (full)"
        elif official.sha256_prefix:
            known = f"sha256 prefix {official.sha256_prefix} only"
        else:
            known = "no sha256 known"
        file_name = official.file_name if official else "–"
        click.echo(f"{name:<26} {file_name}  [{known}]")


@main.command(
    "pull",
    epilog="Examples:\n\n\b\n"
    "  rtmw-zoo pull rtmw-x-256x192 --allow-prefix\n"
    "  rtmw-zoo pull rtmw-l-256x192 --mirror https://mirror.example.org/rtmw \\\n"
    "      --sha256 <64 hex digits you trust> --out checkpoints/\n"
    "  RTMW_ZOO_MIRRORS='https://a.example/rtmw https://b.example/rtmw' rtmw-zoo pull NAME ..."
    + exit_code_epilog("no source delivered a file with the expected sha256"),
)
@click.argument("name")
@click.option(
    "--mirror", "mirrors", multiple=True, metavar="URL",
    help="Base URL serving the official file name; repeatable, tried in order before the "
    "official URL (also from $RTMW_ZOO_MIRRORS).",
)  # fmt: skip
@vocab_option(
    "out", default=str(DEFAULT_DIR), show_default=True, type=click.Path(file_okay=False),
    help="Folder that receives the checkpoint.",
)  # fmt: skip
@click.option("--sha256", default=None, help="The full sha256 you trust (64 hex digits).")
@click.option(
    "--allow-prefix", is_flag=True,
    help="Accept a check of the 8-hex prefix in the official name where no full hash is known.",
)  # fmt: skip
@click.option("--no-official", is_flag=True, help="Try the mirrors only.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds per connection.")
@verbosity
def pull_command(
    name: str, mirrors: tuple[str, ...], out: str, sha256: str | None, allow_prefix: bool,
    no_official: bool, timeout: float, quiet: bool,
) -> None:  # fmt: skip
    """Download NAME's official checkpoint from the first source that delivers it, verify its
    sha256, resume a partial download, and never leave a partial file under the final name."""
    from tqdm import tqdm

    from rtmw.models.download import pull, zoo_config

    zoo_config(name)  # an unknown name is one line before any network
    bar = tqdm(unit="B", unit_scale=True, desc=name, disable=quiet, leave=False)

    def progress(done: int, total: int | None) -> None:
        if total is not None:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = pull(name, Path(out).expanduser(), mirrors, official=not no_official,
                      sha256=sha256, allow_prefix=allow_prefix, timeout=timeout,
                      progress=progress)  # fmt: skip
    finally:
        bar.close()
    for attempt in result.attempts:
        click.echo(f"  tried: {attempt}")
    click.echo(result.line())


if __name__ == "__main__":
    main()
