"""``rtmw-calib``: a calibration set of real person crops (or, with ``--frames``, whole
letterboxed frames for a person detector), hashed and reproducible."""

from __future__ import annotations

import click

from rtmw.cli._common import exit_code_epilog, verbosity, vocab_option


def _size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(
            f"WIDTHxHEIGHT expected, e.g. 192x256; got {value!r}", param_hint="--input-size"
        ) from None
    from rtmw.calib.calibset import INPUT_SIDE_RANGE

    if min(width, height) < INPUT_SIDE_RANGE[0] or max(width, height) > INPUT_SIDE_RANGE[1]:
        raise click.BadParameter(
            f"{value!r} is not a model input size (e.g. 192x256)", param_hint="--input-size"
        )
    return width, height


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n\b\n"
        "  rtmw-calib --images train2017/ --ann coco_wholebody_train_v1.0.json \\\n"
        "      --input-size 192x256 --n 512 --out calib-256x192.npz\n"
        "  rtmw-calib --images frames/ --dets person_dets.json --input-size 288x384 \\\n"
        "      --n 256 --out calib-384x288.npz\n"
        "  # whole frames for an INT8 person detector (RTMDet-nano's 320x320 input)\n"
        "  rtmw-calib --frames --images val2017/ --ann person_keypoints_val2017.json \\\n"
        "      --input-size 320x320 --n 128 --out calib-frames-320.npz\n\n"
        "With --dets, images are found by COCO naming (<image_id:012d>.jpg) and part shares\n"
        "cannot be known."
        + exit_code_epilog("refused: too few crops, unreadable or inconsistent files")
    ),
)
@vocab_option("image_dir", required=True, type=click.Path(file_okay=False), help="Image folder.")
@vocab_option("ann_file", type=click.Path(dir_okay=False), help="COCO-WholeBody annotation JSON.")
@vocab_option("det_file", type=click.Path(dir_okay=False), help="Person boxes (COCO results).")
@click.option(
    "--frames", is_flag=True,
    help="Whole frames letterboxed for a person detector (mmdet's resize + pad) instead of "
    "person crops; --ann (optional) prefers frames with persons.",
)  # fmt: skip
@click.option(
    "--input-size", "input_size", default=None,
    help="WIDTHxHEIGHT of the model input  [default: 192x256 crops, 640x640 frames]",
)  # fmt: skip
@click.option("--n", "n", default=512, show_default=True, help="Number of person crops.")
@vocab_option("seed", default=0, show_default=True, help="Seed of the crop sampling.")
@click.option("--hand-share", default=0.4, show_default=True, help="Wanted share with a hand.")
@click.option("--face-share", default=0.4, show_default=True, help="Wanted share with a face.")
@click.option("--min-score", default=0.5, show_default=True, help="Box score floor (--dets).")
@vocab_option("out", required=True, type=click.Path(dir_okay=False), help="The .npz to write.")
@verbosity
def main(
    image_dir: str,
    ann_file: str | None,
    det_file: str | None,
    frames: bool,
    input_size: str | None,
    n: int,
    seed: int,
    hand_share: float,
    face_share: float,
    min_score: float,
    out: str,
    quiet: bool,
) -> None:
    """Crop N persons through rtmw.pipeline (or letterbox N frames) and store them with a
    manifest."""
    from rtmw.calib import build_calibration_set, save_calibration_set

    if frames:
        from rtmw.calib.calibset import build_frame_calibration_set
        from rtmw.errors import UsageError

        if det_file:
            raise UsageError("--frames takes whole frames: give --ann (optional), not --dets")
        calib = build_frame_calibration_set(
            image_dir, input_size=_size(input_size or "640x640"), ann_file=ann_file, n=n,
            seed=seed, progress=not quiet,
        )  # fmt: skip
        path = save_calibration_set(calib, out)
        share = calib.manifest["shares"]["with_persons"]
        click.echo(
            f"{path}: {len(calib)} frames letterboxed to {calib.input_size[0]}x"
            f"{calib.input_size[1]}"
            + (f", {share:.0%} with persons" if share is not None else "")
            + f"; sha256 {calib.sha256[:16]}…"
        )
        return

    calib = build_calibration_set(
        image_dir,
        input_size=_size(input_size or "192x256"),
        ann_file=ann_file,
        boxes_file=det_file,
        n=n,
        seed=seed,
        hand_share=hand_share,
        face_share=face_share,
        min_box_score=min_score,
        progress=not quiet,
    )
    path = save_calibration_set(calib, out)
    shares = calib.manifest["shares"]
    if shares["hands"] is None:
        share_text = "part shares unknown (boxes only)"
    else:
        share_text = (
            f"{shares['hands']:.0%} with a hand (of available {shares['available_hands']:.0%}), "
            f"{shares['face']:.0%} with a face (of available {shares['available_face']:.0%})"
        )
    click.echo(
        f"{path}: {len(calib)} crops {calib.input_size[0]}x{calib.input_size[1]} from "
        f"{len(calib.manifest['images'])} images; {share_text}; sha256 {calib.sha256[:16]}…"
    )
