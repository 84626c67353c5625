"""``rtmw-inspect``: say which RTMW or RTMDet configuration a checkpoint file holds."""

from __future__ import annotations

import json

import click

from rtmw.cli._common import exit_code_epilog, verbosity


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Examples:\n\n\b\n"
    "  rtmw-inspect rtmw-dw-x-l_simcc-cocktail14_270e-256x192-20231122.pth\n"
    "  rtmw-inspect rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.pth"
    + exit_code_epilog("not an RTMW or RTMDet checkpoint, or one that does not load strictly"),
)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON record instead of text.")
@verbosity
def main(checkpoint: str, as_json: bool, quiet: bool) -> None:
    """Identify an mmpose-format RTMW or mmdet-format RTMDet CHECKPOINT from its tensor
    shapes and load it strictly."""
    from rtmw.models import RTMDetConfig, any_model_from_contents, read_checkpoint

    contents = read_checkpoint(checkpoint)
    model, config = any_model_from_contents(contents)
    record: dict[str, object] = {
        "file": checkpoint,
        "sha256": contents.sha256,
        "model": config.name,
        "task": "person detector" if isinstance(config, RTMDetConfig) else "whole-body pose",
        "input_size": list(config.input_size),
        "widen_factor": config.widen_factor,
        "deepen_factor": config.deepen_factor,
        # shared tensors (RTMDet's shared head convs) counted once
        "parameters": sum(p.numel() for p in model.parameters()),
        "tensors": len(contents.state_dict),
        "wrapper_prefix": contents.stripped_prefix,
        "outputs": list(config.output_names),
    }
    if isinstance(config, RTMDetConfig):
        record["classes"] = config.num_classes
        record["exp_on_reg"] = config.exp_on_reg
        record["share_conv"] = config.share_conv
        record["published_box_ap"] = config.published.ap if config.published else None
    else:
        published = config.published
        record["published_wholebody_ap"] = published.ap["wholebody"] if published else None
        if config.is_3d:  # RTMW3D: the codec the third output decodes with
            record["depth"] = {"depth_size": config.depth_size, "z_range": config.z_range,
                               "root_index": list(config.root_index)}  # fmt: skip
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    for key, value in record.items():
        click.echo(f"{key:>24}: {value}")
