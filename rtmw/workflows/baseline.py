"""The committed CPU baseline of the published configurations, latency only.

Official weights cannot be downloaded here, and random-init weights cannot be judged for
accuracy (flat logits; INT8 of them is indistinguishable from a broken quantisation), so
every artifact is exported ``latency_only``: the same graphs, the same calibration and
mixed-precision policy as real weights get, verified for structure. Each model gets one
benchmark run (every CPU target, batch 1 and 8, one thread count for every runtime,
streaming); a combined report compares the routes across models. ``make bench-baseline``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtmw import runtimes
from rtmw.bench.report import load_results, render
from rtmw.bench.run import BenchSettings, bench
from rtmw.bench.timing import TimingPlan
from rtmw.calib import build_calibration_set, save_calibration_set
from rtmw.data.synthetic import make_dataset
from rtmw.export import export, get_target, list_targets, unavailable_reason
from rtmw.models import build, get_config, save_checkpoint
from rtmw.runtimes.base import default_threads
from rtmw.schemas import Status

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

PUBLISHED = ("rtmw-m-256x192", "rtmw-l-256x192", "rtmw-l-384x288")
# what runs on a CPU: every format but TensorRT (GPU) and the torch reference
CPU_FORMATS = runtimes.deployment_formats("cpu")  # every adapter that runs on the CPU


@dataclass(frozen=True)
class BaselineSettings:
    batches: tuple[int, ...] = (1, 8)
    threads: int | None = None  # None: every usable core, the same for every runtime
    plan: TimingPlan = field(default_factory=lambda: TimingPlan(warmup_s=1.0, seconds=2.0))
    stream_frames: int = 16
    calib_images: int = 60
    calib_n: int = 128
    seed: int = 0


def cpu_targets() -> list[str]:
    """Every registered target a CPU runs (INT8 included), minus what this host cannot."""
    return [t for t in list_targets() if get_target(t).format in CPU_FORMATS
            and unavailable_reason(get_target(t)) is None]  # fmt: skip


# onnxruntime's percentile calibration keeps every activation of every calibration crop in
# memory before it builds histograms: 112 crops of RTMW-l at 384×288 were killed for memory
# on a 24 GiB machine. Crops are scaled down with the input's pixels (128 at 256×192).
CALIB_PIXEL_BUDGET = 128 * 192 * 256


def calibration_crops_for(input_size: tuple[int, int], wanted: int) -> int:
    pixels = input_size[0] * input_size[1]
    return max(48, min(wanted, CALIB_PIXEL_BUDGET // pixels))


def calibration_for(work: Path, input_size: tuple[int, int], settings: BaselineSettings) -> Path:
    data = make_dataset(work / "calib-data", settings.calib_images, 404, split="train",
                        progress=False)  # fmt: skip
    calib = build_calibration_set(
        data.image_dir, input_size=input_size, ann_file=data.ann_file,
        n=calibration_crops_for(input_size, settings.calib_n),
        seed=settings.seed, progress=False,
    )  # fmt: skip
    return save_calibration_set(calib, work / f"calib-{input_size[0]}x{input_size[1]}.npz")


def _made_from(checkpoint: Path, artifacts: Path, names: Sequence[str]) -> dict[str, Path]:
    """Latency-only artifacts of these targets already exported from this very checkpoint
    (hash-checked): a rerun benches them again without exporting them again."""
    from rtmw.artifact import read_artifact
    from rtmw.errors import ArtifactError
    from rtmw.hashing import sha256_file

    digest = sha256_file(checkpoint)
    found = {}
    for name in names:
        try:
            manifest = read_artifact(artifacts / name).manifest
        except ArtifactError:
            continue
        if manifest.source.get("sha256") == digest and manifest.verification.get("passed"):
            found[name] = artifacts / name
    return found


def bench_model(
    model: str,
    out: Path,
    work: Path,
    settings: BaselineSettings | None = None,
    *,
    targets: Sequence[str] | None = None,
    say: Say = logger.info,
) -> dict[str, Any]:
    """Export ``model`` (random init, latency only) to every CPU target and bench it."""
    settings = settings or BaselineSettings()
    config = get_config(model)
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / f"{model}-random.pth"
    if not checkpoint.is_file():
        save_checkpoint(build(model, seed=settings.seed), checkpoint)
    names = list(targets or cpu_targets())
    artifacts = work / "artifacts"
    done = _made_from(checkpoint, artifacts, names)
    if len(done) < len(names):
        calib = calibration_for(work, config.input_size, settings)
        todo = [n for n in names if n not in done]
        say(f"== {model}: export {len(todo)} targets (latency only)")
        made = export(checkpoint, todo, artifacts, overwrite=True, calib=calib,
                      latency_only=True, progress=True)  # fmt: skip
        for result in made:
            say("  " + result.line())
            if result.status == Status.OK and result.path is not None:
                done[result.target] = result.path
    paths = [done[n] for n in names if n in done]
    threads = settings.threads or default_threads()
    say(f"== {model}: bench {len(paths)} artifacts, batch {settings.batches}, {threads} threads")
    bench_settings = BenchSettings(batches=settings.batches, threads=threads, plan=settings.plan,
                                   stream=settings.stream_frames, draw=0, isolate=True)  # fmt: skip
    return bench(list(paths), bench_settings, out, name=f"cpu-{model}")


def bench_published(
    results_root: Path,
    settings: BaselineSettings | None = None,
    *,
    models: Sequence[str] = PUBLISHED,
    say: Say = logger.info,
) -> list[Path]:
    """One run per model under ``results_root/cpu-<model>``, and the comparison of all of
    them under ``results_root/cpu-published``; returns the results files."""
    files = []
    for model in models:
        out = results_root / f"cpu-{model}"
        bench_model(model, out, results_root / "_scratch" / model, settings, say=say)
        files.append(out / "results.json")
    render([load_results(f) for f in files], results_root / "cpu-published")
    return files
