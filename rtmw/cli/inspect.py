"""``rtmw-inspect``: say which RTMW configuration a checkpoint file holds."""

from __future__ import annotations

import json

import click

from rtmw.cli._common import exit_code_epilog, verbosity


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Example:\n\n\b\n  rtmw-inspect rtmw-dw-x-l_simcc-cocktail14_270e-256x192-20231122.pth"
    + exit_code_epilog("not an RTMW checkpoint, or one that does not load strictly"),
)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record instead of text.")
@verbosity
def main(checkpoint: str, as_json: bool, quiet: bool) -> None:
    """Identify an mmpose-format RTMW CHECKPOINT from its tensor shapes and load it strictly."""
    from rtmw.models import load_checkpoint, read_checkpoint

    contents = read_checkpoint(checkpoint)
    model, config = load_checkpoint(checkpoint)
    record = {
        "file": checkpoint,
        "sha256": contents.sha256,
        "model": config.name,
        "input_size": list(config.input_size),
        "widen_factor": config.widen_factor,
        "deepen_factor": config.deepen_factor,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tensors": len(contents.state_dict),
        "wrapper_prefix": contents.stripped_prefix,
        "published_wholebody_ap": config.published.ap["wholebody"] if config.published else None,
        "outputs": list(config.output_names),
    }
    if config.is_3d:  # RTMW3D: the codec the third output decodes with
        record["depth"] = {"depth_size": config.depth_size, "z_range": config.z_range,
                           "root_index": list(config.root_index)}  # fmt: skip
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    for key, value in record.items():
        click.echo(f"{key:>24}: {value}")
