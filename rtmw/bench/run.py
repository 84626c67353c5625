"""One benchmark run over many artifacts: latency, end-to-end, accuracy, fidelity.

Each artifact gets a status — ok, failed (reason) or skipped (reason) — and one failing
artifact never stops the run. The baseline is the route most users have today:
onnxruntime FP32 fed one crop at a time; every row's end-to-end speed is reported as a
ratio against it, measured in the same run on the same frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rtmw import runtimes
from rtmw.artifact import Artifact, read_artifact
from rtmw.bench.entry import BenchEntry, ResultsDocument
from rtmw.bench.environment import RUNTIME_DEVICE, environment
from rtmw.bench.peak import Peak, compute_precision, host_peak
from rtmw.bench.report import render
from rtmw.bench.stream import stream
from rtmw.bench.timing import TimingPlan, time_frame, time_inference, time_stages
from rtmw.data.evalset import EvalSet, load_eval_set, read_image
from rtmw.errors import MissingDependency, RtmwError, UsageError
from rtmw.harness import AccuracyRun, fidelity, run_accuracy
from rtmw.hashing import sha256_file
from rtmw.pipeline.detect import DetectorSpec
from rtmw.pipeline.draw import draw_poses
from rtmw.pipeline.preprocess import preprocess
from rtmw.pipeline.topdown import TopDown
from rtmw.runtimes.base import Runtime
from rtmw.schemas import RESULTS, Status, VerificationMode

logger = logging.getLogger(__name__)

BASELINE_TARGET = "onnx"
LATENCY_ONLY_REFUSAL = (
    f"{VerificationMode.LATENCY_ONLY} artifact (weights not judged for accuracy): no AP, "
    "fidelity or gate"
)


def verification_mode(verification: dict[str, Any]) -> VerificationMode:
    """How the artifact was verified at export (manifests from before the mode: accuracy)."""
    return VerificationMode(verification.get("mode", VerificationMode.ACCURACY))


@dataclass
class BenchSettings:
    device: str = "cpu"
    batches: tuple[int, ...] = (1, 8)
    threads: int | None = None
    plan: TimingPlan = field(default_factory=TimingPlan)
    flip: bool = True
    frame_persons: int = 6
    image_dir: str | None = None
    ann_file: str | None = None
    det_file: str | None = None
    limit: int | None = None
    reference: str | None = None
    draw: int = 3
    seed: int = 0
    stream: int = 0  # frames fed through the overlapped streaming pipeline (0: not run)
    # runtime name → its tuning knobs (Runtime.OPTIONS), e.g. {"openvino": {...}}
    runtime_options: dict[str, dict[str, str]] = field(default_factory=dict)
    flip_in_batch: bool = True
    # each artifact's latency in a fresh process: its peak RSS is then its own, not the
    # residue of the routes before it (accuracy runs stay in this process)
    isolate: bool = False
    # no timed call and no baseline: on an emulator or a simulator (the HTP emulator, the
    # RKNN simulator, qemu) a timing is not the device's speed, and it costs the most time
    accuracy_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``rtmw-bench --remote`` ships to the host's agent."""
        data = asdict(self)
        data["batches"] = list(self.batches)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchSettings:
        """The inverse of :meth:`to_dict`; an unknown key is refused (another rtmw wrote it)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"bench settings: unknown key(s) {unknown}")
        values = dict(data)
        if "plan" in values:
            values["plan"] = TimingPlan(**values["plan"])
        if "batches" in values:
            values["batches"] = tuple(int(b) for b in values["batches"])
        return cls(**values)


def _row_names(paths: list[Path]) -> dict[Path, str]:
    """Each artifact's row name: its folder name, or parent-folder when two share one (a
    detector's onnx beside the pose model's onnx)."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.name] = counts.get(path.name, 0) + 1
    return {p: p.name if counts[p.name] == 1 else f"{p.parent.name}-{p.name}" for p in paths}


def find_artifacts(paths: list[str | Path]) -> list[Path]:
    """Artifact folders named directly, or every artifact folder one level below a folder."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "artifact.json").is_file():
            found.append(path)
        elif path.is_dir():
            # hidden folders are an export's work in progress (or a killed one's remains)
            children = sorted(
                p
                for p in path.iterdir()
                if (p / "artifact.json").is_file() and not p.name.startswith(".")
            )
            if not children:
                raise RtmwError(f"{path}: no artifact.json in it or in its subfolders")
            found.extend(children)
        else:
            raise RtmwError(f"not an artifact folder: {path}")
    return found


def fixed_inputs(
    input_size: tuple[int, int], batch: int, persons: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops (batch,3,H,W), frame image, frame boxes (persons,4)) from synthetic figures.

    Real person crops rather than noise, so that backends whose speed depends on values
    (sparse kernels, denormals) see realistic data; the same seed gives the same bytes.
    """
    from rtmw.data.synthetic import render_image

    crops: list[np.ndarray] = []
    frame: np.ndarray | None = None
    frame_boxes = np.zeros((0, 4), np.float32)
    index = 0
    while sum(len(c) for c in crops) < batch or frame is None:
        image, anns, _ = render_image(np.random.default_rng([seed, index]), index + 1, 1)
        index += 1
        boxes = np.array(
            [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], np.float32
        ).reshape(-1, 4)
        if len(boxes) == 0:
            continue
        crops.append(preprocess(image, boxes, input_size).inputs)
        if frame is None and len(boxes) >= 2:
            frame = image
            # the frame's persons, repeated with small offsets up to the wanted count
            repeats = [boxes[i % len(boxes)] + (i // len(boxes)) * 3.0 for i in range(persons)]
            frame_boxes = np.stack(repeats).astype(np.float32)
    return np.concatenate(crops)[:batch], frame, frame_boxes


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux: clear_refs 5), so that the
    next reading is the peak of what ran since; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float | None:
    """VmHWM: the peak resident set since the last reset (or the process start)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """The current resident set in MB (0 where /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _row_peak(load_peak: float | None, entry: BenchEntry) -> float | None:
    """The row's peak RSS: the highest of the marks read while loading and while each speed
    phase ran (each phase resets the mark). Not getrusage's ru_maxrss: Linux keeps that
    across fork and exec, so a spawned child reported its parent's high-water mark
    (5.26 GB on every isolated demo row)."""
    phases = [*entry.get("latency", {}).values(), *entry.get("e2e", {}).values()]
    if "stream" in entry:
        phases.append(entry["stream"])
    marks = [load_peak, *(phase.get("peak_rss_mb") for phase in phases)]
    known = [mark for mark in marks if mark is not None]
    return max(known) if known else None


def _open(artifact: Artifact, settings: BenchSettings) -> tuple[Runtime | None, Status, str]:
    """(runtime, status, reason); skipped when the backend or the device kind is absent."""
    runtime_device = RUNTIME_DEVICE[settings.device]
    cls = runtimes.runtime_class(artifact.manifest.format)
    if runtime_device not in cls.devices:
        return None, Status.SKIPPED, f"{cls.name} has no {runtime_device} device"
    try:
        runtime = runtimes.open(
            artifact, device=runtime_device, threads=settings.threads,
            options=settings.runtime_options.get(cls.name),
        )  # fmt: skip
    except MissingDependency as exc:
        return None, Status.SKIPPED, str(exc)
    return runtime, Status.OK, ""


def bench_artifact(
    artifact: Artifact,
    settings: BenchSettings,
    eval_set: EvalSet | None,
    out_dir: Path,
    *,
    speed: bool = True,
    name: str | None = None,
) -> tuple[BenchEntry, AccuracyRun | None]:
    """One row: speed (unless ``speed`` is False: measured elsewhere) and accuracy."""
    manifest = artifact.manifest
    entry = BenchEntry({
        "name": name or artifact.path.name,
        "path": str(artifact.path),
        "target": manifest.target,
        "format": manifest.format,
        "precision": manifest.precision,
        "model": manifest.model,
        "input_size": list(manifest.input_size),
        "size_mb": artifact.size_bytes / 1e6,
        "source_sha256": manifest.source.get("sha256"),
        "verification": verification_mode(manifest.verification),
        "task": "detect" if manifest.detector else "pose",
    })  # fmt: skip
    rss_before = _rss_mb()
    reset_peak_rss()  # the row's peak starts here, not at the process's own high-water mark
    start = time.perf_counter()
    runtime, status, reason = _open(artifact, settings)
    entry["status"] = status
    if runtime is None:
        entry["reason"] = reason
        return entry, None
    try:
        entry["load_s"] = time.perf_counter() - start
        entry["load_rss_delta_mb"] = _rss_mb() - rss_before  # the loaded model in memory
        load_peak = peak_rss_mb()
        entry["device_used"] = runtime.device
        entry["execution"] = dict(runtime.execution)  # the precision contract, read back
        entry["built_on"] = manifest.host.get("isa_class", "unrecorded")
        entry["loops_over_batch"] = runtime.loops_over_batch
        if manifest.detector:  # a person detector: frames, boxes and box AP
            if speed:
                entry.update(measure_detector_speed(runtime, artifact, settings))
            if eval_set is not None and not entry.latency_only:
                entry["detection"] = _detect_and_score(runtime, artifact, eval_set, out_dir,
                                                       entry.name)  # fmt: skip
            if speed:
                entry["rss_mb"] = _rss_mb()
                entry["peak_rss_mb"] = _row_peak(load_peak, entry)
            return entry, None
        if speed:
            entry.update(measure_speed(runtime, artifact, settings))
        accuracy = None
        if eval_set is not None and entry.latency_only:
            entry["accuracy_refused"] = LATENCY_ONLY_REFUSAL
            logger.warning("%s: %s", entry.name, LATENCY_ONLY_REFUSAL)
        elif eval_set is not None:
            accuracy = run_accuracy(
                runtime.infer,
                manifest.input_size,
                eval_set,
                flip=settings.flip,
                max_batch=max(settings.batches),
                depth=runtime.depth,
            )
            entry["accuracy"] = accuracy.to_dict()
            entry["predictions"] = _save_predictions(accuracy, out_dir, entry.name)
            entry["images"] = _draw_examples(accuracy, eval_set, out_dir, entry.name, settings)
        if speed:
            rss_after = _rss_mb()
            entry["rss_mb"] = rss_after
            entry["rss_delta_mb"] = rss_after - rss_before
            entry["peak_rss_mb"] = _row_peak(load_peak, entry)
        return entry, accuracy
    finally:
        runtime.close()


def measure_speed(runtime: Runtime, artifact: Artifact, settings: BenchSettings) -> dict[str, Any]:
    """Latency per batch (with GMAC/s, fraction of peak, peak RSS), the frame end to end per
    batch, and the streaming run: every speed figure of one row."""
    manifest = artifact.manifest
    crops, frame, boxes = fixed_inputs(
        manifest.input_size, max(settings.batches), settings.frame_persons, settings.seed
    )
    macs = _macs(manifest.model)
    peak = host_peak(runtime.host, compute_precision(manifest.precision, runtime.host))
    figures: dict[str, Any] = {
        "threads": runtime.threads,
        "macs_per_crop": macs,
        "peak": peak.to_dict() if peak is not None else None,
        "latency": {},
        "e2e": {},
    }
    for batch in settings.batches:
        reset_peak_rss()
        stats = time_inference(runtime.infer, crops[:batch], settings.plan)
        figures["latency"][str(batch)] = {
            **stats.to_dict(),
            **_rate(stats.throughput, macs, peak),
            "peak_rss_mb": peak_rss_mb(),
        }
        pose = TopDown(
            runtime.infer, manifest.input_size, flip_test=settings.flip, max_batch=batch,
            flip_in_batch=settings.flip_in_batch, depth=runtime.depth,
        )  # fmt: skip
        reset_peak_rss()
        figures["e2e"][str(batch)] = {
            **time_frame(pose, frame, boxes, settings.plan),
            "peak_rss_mb": peak_rss_mb(),
        }
    if settings.stream:
        reset_peak_rss()
        figures["stream"] = {
            **stream(runtime, manifest.input_size, frame, boxes, settings.stream,
                     flip=settings.flip),
            "peak_rss_mb": peak_rss_mb(),
        }  # fmt: skip
    return figures


def detections_from_artifact(
    path: Path, settings: BenchSettings, out: Path, *, progress: bool = True
) -> tuple[Path, dict[str, Any]]:
    """Run a detector artifact over the evaluation images (those with annotated persons,
    the images pose AP is scored on): its --dets file and its person box AP."""
    artifact = read_artifact(path)
    if not artifact.manifest.detector:
        raise UsageError(f"--dets {path}: a pose artifact, not a person detector")
    gt = load_eval_set(settings.image_dir or "", settings.ann_file or "", None,
                       limit=settings.limit)  # fmt: skip
    with runtimes.open(artifact, device=settings.device, threads=settings.threads) as runtime:
        record = _detect_and_score(runtime, artifact, gt, out, path.name, progress=progress)
        device = runtime.device
    logger.info("%s: person box AP %.3f on %d images", path.name, record["ap"], len(gt.items))
    handoff = out / record["handoff"]["file"]
    return handoff, {"artifact": str(path), "target": artifact.manifest.target,
                     "precision": artifact.manifest.precision, "device_used": device,
                     **record}  # fmt: skip


def detector_spec(artifact: Artifact) -> DetectorSpec:
    manifest = artifact.manifest
    return DetectorSpec.from_record(manifest.detector or {}, manifest.input_size)


def synthetic_frames(count: int, seed: int) -> list[np.ndarray]:
    """Fixed synthetic frames with people (the same bytes for the same seed)."""
    from rtmw.data.synthetic import render_image

    return [render_image(np.random.default_rng([seed, 500 + i]), i + 1, 1)[0]
            for i in range(count)]  # fmt: skip


def measure_detector_speed(
    runtime: Runtime, artifact: Artifact, settings: BenchSettings
) -> dict[str, Any]:
    """A detector row's speed: model-only latency per batch of letterboxed frames, and one
    frame end to end (letterbox → inference → decode with mmdet's test_cfg)."""
    from rtmw.harness.detection import frame_batch
    from rtmw.pipeline.detect import decode_detections, letterbox

    spec = detector_spec(artifact)
    frames = synthetic_frames(max(settings.batches), settings.seed)
    batch_inputs = frame_batch(spec, frames)
    figures: dict[str, Any] = {"threads": runtime.threads, "latency": {}}
    for batch in settings.batches:
        reset_peak_rss()
        stats = time_inference(runtime.infer, batch_inputs[:batch], settings.plan)
        figures["latency"][str(batch)] = {**stats.to_dict(), "peak_rss_mb": peak_rss_mb()}
    frame = frames[0]
    reset_peak_rss()
    whole, stages = time_stages(
        [("letterbox", lambda _: letterbox(frame, spec)),
         ("inference", lambda placed: (placed[1], runtime.infer(placed[0]))),
         ("decode", lambda done: decode_detections(done[1], spec, [done[0]])[0])],
        1, settings.plan,
    )  # fmt: skip
    figures["detect_frame"] = {
        "frame_size": [int(frame.shape[1]), int(frame.shape[0])],
        "e2e": whole.to_dict(),
        "frames_per_s": whole.throughput,
        "stages_p50_ms": stages,
        "peak_rss_mb": peak_rss_mb(),
    }
    return figures


def _detect_and_score(
    runtime: Runtime, artifact: Artifact, eval_set: EvalSet, out_dir: Path, name: str,
    *, progress: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Person box AP over the evaluation images, and the detections written as the --dets
    file ``detections/<name>.json`` (its path, relative to ``out_dir``, in the record)."""
    from rtmw.harness.detection import HANDOFF, handoff_boxes, person_boxes_ap, write_detections

    images = {item.image_id: item.path for item in eval_set.items}
    box_ap, found = person_boxes_ap(runtime.infer, detector_spec(artifact), eval_set.ann_file,
                                    images, progress=progress)  # fmt: skip
    folder = out_dir / "detections"
    written = write_detections(found, folder / f"{name}.json")
    handed = write_detections(handoff_boxes(found), folder / f"{name}.handoff.json")
    # "detections": every box (score > 0.001, what box AP scores); "handoff": the boxes a
    # deployment crops (score > 0.3, NMS 0.3), what --dets scores the pose model on
    return {**box_ap.to_dict(), "detections": str(written.relative_to(out_dir)),
            "handoff": {"file": str(handed.relative_to(out_dir)), **HANDOFF}}  # fmt: skip


def _macs(model: str) -> int | None:
    """MACs per crop of the artifact's configuration (None for a name the zoo lacks, and on
    a run-only host without torch, which counts them: no GMAC/s there)."""
    from rtmw.errors import RtmwError as _Unknown

    try:
        from rtmw.models.macs import macs_per_crop

        return macs_per_crop(model)
    except (_Unknown, ImportError):
        return None


def _rate(crops_per_s: float, macs: int | None, peak: Peak | None) -> dict[str, Any]:
    """Achieved GMAC/s and its fraction of the host's peak (a range where the clock is)."""
    if macs is None:
        return {"gmacs": None, "peak_fraction": None}
    gmacs = crops_per_s * macs / 1e9
    if peak is None:
        return {"gmacs": gmacs, "peak_fraction": None}
    low, high = peak.gmacs
    return {"gmacs": gmacs, "peak_fraction": [gmacs / high, gmacs / low]}


# what an accuracy run adds to a row (the speed figures come from the isolated child)
ACCURACY_KEYS = ("accuracy", "accuracy_refused", "predictions", "images", "detection")


def _child_entry(
    path: str, settings: BenchSettings, out_dir: str, run_log: str | None, name: str
) -> dict[str, Any]:
    from rtmw.logs import attach_run_log, setup_logging

    setup_logging(0, quiet=True)  # ours: errors; the rest into the parent's run log
    if run_log is not None:
        attach_run_log(run_log)
    entry, _ = bench_artifact(read_artifact(path), settings, None, Path(out_dir), name=name)
    return entry


def _bench_in_child(path: Path, settings: BenchSettings, out_dir: Path, name: str) -> BenchEntry:
    """``bench_artifact`` (speed only) in a freshly spawned interpreter: the row's peak RSS
    is then its own, not the residue of the rows (and the evaluation set) before it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rtmw.logs import run_log

    log = run_log()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        entry = BenchEntry(pool.submit(
            _child_entry, str(path), settings, str(out_dir), None if log is None else str(log),
            name,
        ).result())  # fmt: skip
    entry["isolated"] = True
    return entry


def _save_predictions(accuracy: AccuracyRun, out_dir: Path, name: str) -> str:
    """The raw results (before rescoring), so gates can resample images later."""
    import json

    path = out_dir / "predictions" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(accuracy.results, default=_json_default))
    return str(path.relative_to(out_dir))


def _draw_examples(
    accuracy: AccuracyRun, eval_set: EvalSet, out_dir: Path, name: str, settings: BenchSettings
) -> list[str]:
    import cv2

    written = []
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for item in eval_set.items[: settings.draw]:
        result = accuracy.predictions[item.image_id]
        canvas = draw_poses(
            read_image(item.path), result.keypoints, result.scores, boxes_xyxy=item.boxes_xyxy
        )
        path = image_dir / f"{name}_{item.image_id}.jpg"
        cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        written.append(str(path.relative_to(out_dir)))
    return written


def _baseline(
    entries: list[BenchEntry], artifacts: dict[str, Artifact], settings: BenchSettings
) -> dict[str, Any] | None:
    """onnxruntime FP32, one crop at a time, end to end on the same frame."""
    for entry in entries:
        if entry.ok and entry.target == BASELINE_TARGET and entry.task == "pose":
            artifact = artifacts[entry.name]
            with runtimes.open(artifact, device="cpu", threads=settings.threads) as runtime:
                _, frame, boxes = fixed_inputs(
                    artifact.manifest.input_size, 1, settings.frame_persons, settings.seed
                )
                pose = TopDown(
                    runtime.infer, artifact.manifest.input_size, flip_test=settings.flip,
                    max_batch=1, depth=runtime.depth,
                )  # fmt: skip
                timing = time_frame(pose, frame, boxes, settings.plan)
            return {
                "description": "onnxruntime FP32 on CPU, one crop per call",
                "artifact": entry.name,
                "persons_per_s": timing["persons_per_s"],
                "e2e": timing,
            }
    return None


def bench(
    artifact_paths: list[str | Path],
    settings: BenchSettings,
    out_dir: str | Path,
    *,
    name: str | None = None,
    progress: bool = True,
) -> ResultsDocument:
    """Benchmark every artifact; write results.json, results.md, plots and images.

    ``settings.accuracy_only``: no timed call and no baseline (an emulator, a simulator, the
    aarch64 lane: a timing there is not a speed and costs a third of the lane's time)."""
    speed = not settings.accuracy_only
    out = Path(out_dir)
    env = environment(settings.device)
    paths = find_artifacts(list(artifact_paths))
    names = _row_names(paths)
    eval_set = None
    detector_run: dict[str, Any] | None = None
    if settings.ann_file:
        if not settings.image_dir:
            raise UsageError("--ann needs --images (the image folder)")
        if settings.det_file and (Path(settings.det_file) / "artifact.json").is_file():
            # --dets names a detector artifact: detect first, then pose on its boxes
            det_file, detector_run = detections_from_artifact(Path(settings.det_file), settings,
                                                              out, progress=progress)  # fmt: skip
            settings = replace(settings, det_file=str(det_file))
        eval_set = load_eval_set(
            settings.image_dir or "", settings.ann_file or "", settings.det_file,
            limit=settings.limit,
        )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    entries: list[BenchEntry] = []
    runs: dict[str, AccuracyRun] = {}
    opened: dict[str, Artifact] = {}
    for path in tqdm(paths, desc="bench", unit="artifact", disable=not progress):
        name = names[path]
        try:
            artifact = read_artifact(path)
            opened[name] = artifact
            if settings.isolate and speed:
                entry, accuracy = _bench_in_child(path, settings, out, name), None
                if eval_set is not None and entry.ok:
                    scored, accuracy = bench_artifact(artifact, settings, eval_set, out,
                                                      speed=False, name=name)  # fmt: skip
                    entry.update({k: scored[k] for k in ACCURACY_KEYS if k in scored})
            else:
                entry, accuracy = bench_artifact(artifact, settings, eval_set, out, name=name,
                                                 speed=speed)  # fmt: skip
            if accuracy is not None:
                runs[entry.name] = accuracy
        except Exception as exc:
            logger.debug("artifact %s failed", path, exc_info=True)
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            entry = BenchEntry(
                {"name": name, "path": str(path), "status": Status.FAILED, "reason": reason}
            )
        logger.info("%s: %s %s", entry.name, entry.status, entry.reason)
        entries.append(entry)
    reference_run, reference_name = _reference(settings, runs, opened, eval_set)
    for entry in entries:
        if reference_run is not None and reference_name and entry.name in runs:
            entry["fidelity"] = fidelity(
                runs[entry.name], reference_run, reference_name=reference_name,
                eval_set=eval_set,
            )  # fmt: skip
    baseline = _baseline(entries, opened, settings) if speed else None
    if baseline is not None:
        for entry in entries:
            rates = {batch: entry.persons_per_s(batch) for batch in entry.frame_batches}
            if rates:
                entry["speedup_vs_baseline"] = {
                    batch: rate / baseline["persons_per_s"]
                    for batch, rate in rates.items() if rate is not None
                }  # fmt: skip
    results = _results_document(
        name or out.name, env, settings, eval_set, reference_name, baseline, entries
    )
    if detector_run is not None and results.settings.get("data"):
        results["settings"]["data"]["detector"] = detector_run
    import json

    (out / "results.json").write_text(json.dumps(results, indent=2, default=_json_default) + "\n")
    render([results], out)
    return results


def _reference(
    settings: BenchSettings,
    runs: dict[str, AccuracyRun],
    opened: dict[str, Artifact],
    eval_set: EvalSet | None,
) -> tuple[AccuracyRun | None, str | None]:
    """The FP32 reference run: reused when it was benchmarked too, else run once here."""
    if settings.reference is None or eval_set is None:
        return None, None
    ref_path = Path(settings.reference)
    for name, artifact in opened.items():
        if artifact.path.resolve() == ref_path.resolve() and name in runs:
            return runs[name], name
    artifact = read_artifact(ref_path)
    if artifact.manifest.precision != "fp32":
        raise RtmwError(
            f"--reference must be an FP32 artifact; {ref_path} is {artifact.manifest.precision}"
        )
    if verification_mode(artifact.manifest.verification) == VerificationMode.LATENCY_ONLY:
        raise UsageError(f"--reference {ref_path}: {LATENCY_ONLY_REFUSAL}")
    with runtimes.open(artifact, device="cpu", threads=settings.threads) as runtime:
        run = run_accuracy(
            runtime.infer, artifact.manifest.input_size, eval_set, flip=settings.flip,
            depth=runtime.depth,
        )  # fmt: skip
    return run, ref_path.name


def _json_default(value: object) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _settings_record(
    settings: BenchSettings, eval_set: EvalSet | None, reference_name: str | None
) -> dict[str, Any]:
    """What results.json says about how the run was made (timing, data, reference)."""
    data = None
    if eval_set is not None:
        data = {
            "image_dir": settings.image_dir,
            # the file evaluated: an H3WB release is read through its converted copy
            "ann_file": str(eval_set.ann_file),
            "ann_given": settings.ann_file,
            "det_file": settings.det_file,
            "ann_sha256": sha256_file(Path(settings.ann_file or "")),
            "image_ids": [item.image_id for item in eval_set.items],
            "box_source": eval_set.box_source,
            "num_images": len(eval_set.items),
            "num_instances": eval_set.num_instances,
        }
    plan = settings.plan
    timing = {"warmup_s": plan.warmup_s, "seconds": plan.seconds, "iters": plan.iters,
              "repeats": plan.repeats}  # fmt: skip
    return {
        "batches": list(settings.batches),
        "threads": settings.threads,
        "flip": settings.flip,
        # accuracy only: nothing was timed (an emulator, a simulator: no speed to report)
        "accuracy_only": settings.accuracy_only,
        "timing": None if settings.accuracy_only else timing,
        "frame_persons": settings.frame_persons,
        "data": data,
        "reference": reference_name,
    }


def _results_document(
    name: str,
    env: dict[str, Any],
    settings: BenchSettings,
    eval_set: EvalSet | None,
    reference_name: str | None,
    baseline: dict[str, Any] | None,
    entries: list[BenchEntry],
) -> ResultsDocument:
    return ResultsDocument(
        RESULTS.stamp(
            {
                "name": name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "environment": env,
                "settings": _settings_record(settings, eval_set, reference_name),
                "baseline": baseline,
                "entries": entries,
            }
        )
    )
