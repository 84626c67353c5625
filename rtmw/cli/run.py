"""``rtmw-run``: detect, track, pose and smooth a video; an annotated video and JSON lines."""

from __future__ import annotations

from pathlib import Path

import click

from rtmw.cli._common import exit_code_epilog, log_run_in, verbosity, vocab_option


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Examples:\n\n\b\n"
    "  rtmw-run video.mp4 --det artifacts/rtmdet/onnx --pose artifacts/rtmw/openvino-int8 \\\n"
    "      --out runs/video\n"
    "  rtmw-run frames/ --det DET --pose POSE --det-every 1 --no-smooth --out runs/frames\n"
    "  rtmw-run 0 --det DET --pose POSE --out runs/camera   # camera index 0"
    + exit_code_epilog(
        meaning_of_zero="the source was processed (an empty video gives an empty result)"
    ),
)
@click.argument("source")
@click.option(
    "--det",
    "detector",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Person detector artifact folder (rtmw-export of an RTMDet, or an imported "
    "ONNX detector).",
)
@click.option(
    "--pose",
    "pose",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Pose artifact folder (RTMW or RTMW3D).",
)
@vocab_option(
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for annotated.mp4, frames.jsonl and summary.json.",
)
@click.option(
    "--det-every",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Run the detector every N frames; boxes in between follow the keypoints.",
)
@click.option(
    "--adaptive/--no-adaptive",
    default=True,
    show_default=True,
    help="Also detect on the next frame when a track is lost or its pose weakens.",
)
@click.option(
    "--smooth/--no-smooth",
    default=True,
    show_default=True,
    help="One-Euro smoothing of the keypoints per track.",
)
@click.option(
    "--stream/--no-stream",
    default=True,
    show_default=True,
    help="Overlap decode and detection ahead, drawing behind, with the pose.",
)
@click.option(
    "--one-crop",
    is_flag=True,
    help="One crop per inference call (rtmlib's way) instead of one batch per frame.",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Frame rate of a folder of frames (default: the video's, or 30).",
)
@vocab_option("threads", type=click.IntRange(min=1), default=None, help="Threads per runtime.")
@verbosity
def main(
    source: str,
    detector: str,
    pose: str,
    out: str,
    det_every: int,
    adaptive: bool,
    smooth: bool,
    stream: bool,
    one_crop: bool,
    fps: float | None,
    threads: int | None,
    quiet: bool,
) -> None:
    """Run the frame loop over SOURCE: a video file, a folder of frames or a camera index."""
    import json

    from rtmw.bench.frames import FrameRoute, run_route
    from rtmw.pipeline.frames import FrameSettings
    from rtmw.pipeline.smoothing import OneEuroSettings

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    log_run_in(folder, "rtmw-run")
    settings = FrameSettings(
        det_every=det_every,
        adaptive=adaptive,
        batched=not one_crop,
        smoothing=OneEuroSettings() if smooth else None,
    )
    route = FrameRoute("run", Path(detector), Path(pose), settings, stream=stream)
    record = run_route(route, source, write_to=folder, threads=threads, fps=fps)
    (folder / "summary.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    for warning in record.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if not record.get("frames"):
        click.echo(f"{record['source']}: no frame to process; wrote an empty result to {folder}")
        return
    click.echo(
        f"{record['frames']} frames, {record['frames_per_s']:.1f} frames/s, latency p50 "
        f"{record['latency_ms']['p50']:.1f} ms / p99 {record['latency_ms']['p99']:.1f} ms, "
        f"{record['detections']} detector runs, up to {record['max_persons']} persons: "
        f"{folder / 'annotated.mp4'}, {folder / 'frames.jsonl'}"
    )
