"""``rtmw-bench fleet FLEET.toml``: one command, one table, for every board of a team.

Ray does the distribution (rtmw schedules nothing itself). Each worker node advertises
what it is as a custom resource (``ray start --resources='{"jetson-orin": 1}'``); the
fleet file names device classes after those resources and says which artifact runs on
which class. The command then:

1. probes one node of each class: its rtmw must be ours (version and source digest),
   and a class no node advertises is a skipped row, never a job that waits forever;
2. puts each artifact's files in Ray's object store once; a task unpacks them on its
   node into a cache keyed by the manifest's hash and opens them hash-checked;
3. runs one benchmark job per (artifact, class) on a node of that class, holding one
   unit of the class's resource (so two timings never share a node unit);
4. with an ``[evaluation]`` section, shards the images into contiguous ranges, runs the
   pose pipeline on each shard as its own task (spread over the class's nodes), and
   evaluates the concatenated results once on this machine (an RTMW3D artifact's 3D error
   too, over every shard's poses). Each image is predicted
   alone (its persons batched as on one machine), so the merged six-part evaluation is
   the single-machine one exactly, when the nodes compute the same numbers (same
   runtime, ISA class and threads: one device class);
5. merges every job into one report (results.md: one row group per job), fleet.json.

A job that fails, times out (``timeout_s``, then cancelled) or loses its node becomes
its row's status.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtmw.artifact import MANIFEST, read_artifact
from rtmw.bench.entry import ResultsDocument
from rtmw.errors import RtmwError, UsageError
from rtmw.optional import import_backend
from rtmw.schemas import RESULTS, Status, read_toml

if TYPE_CHECKING:
    from rtmw.data.evalset import EvalSet
    from rtmw.harness import AccuracyRun

logger = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "jetson", "arm")


@dataclass(frozen=True)
class DeviceClass:
    """Nodes that advertise the custom resource ``name``, benchmarked as ``device``."""

    name: str
    device: str = "cpu"
    threads: int | None = None
    env: dict[str, str] = field(default_factory=dict)  # set in the job's worker process


@dataclass(frozen=True)
class FleetArtifact:
    path: Path
    classes: tuple[str, ...]


@dataclass(frozen=True)
class FleetEvaluation:
    image_dir: Path
    ann_file: Path
    det_file: Path | None = None
    limit: int | None = None
    shards: int = 8
    flip: bool = True


@dataclass(frozen=True)
class BenchPlan:
    batches: tuple[int, ...] = (1, 8)
    threads: int | None = None
    warmup_s: float = 1.0
    seconds: float | None = 2.0
    iters: int | None = None
    repeats: int = 3
    stream: int = 0


@dataclass(frozen=True)
class FleetSpec:
    address: str
    classes: dict[str, DeviceClass]
    artifacts: list[FleetArtifact]
    bench: BenchPlan = field(default_factory=BenchPlan)
    evaluation: FleetEvaluation | None = None
    timeout_s: float = 3600.0  # per job
    source: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> FleetSpec:
        path = Path(path)
        data = read_toml(path, "fleet", UsageError)
        return cls.from_dict(data, base=path.parent, where=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: Path, where: str) -> FleetSpec:
        """Every mistake named with its section, before anything connects."""
        known = {"cluster", "bench", "classes", "artifacts", "evaluation"}
        if unknown := set(data) - known:
            raise UsageError(
                f"{where}: unknown section(s) {sorted(unknown)}; known {sorted(known)}"
            )
        cluster = _table(data, "cluster", where, {"address", "timeout_s"})
        classes = {}
        raw_classes = _table(data, "classes", where, None)
        if not raw_classes:
            raise UsageError(f"{where}: [classes.NAME] needed: one per kind of node")
        for name, raw in raw_classes.items():
            spec = _table(
                {"c": raw}, "c", f"{where} [classes.{name}]", {"device", "threads", "env"}
            )
            device = str(spec.get("device", "cpu"))
            if device not in DEVICES:
                raise UsageError(f"{where} [classes.{name}]: device {device!r} not in {DEVICES}")
            env = {str(k): str(v) for k, v in dict(spec.get("env", {})).items()}
            classes[name] = DeviceClass(name, device, spec.get("threads"), env)
        artifacts = []
        raw_artifacts = data.get("artifacts", [])
        if not isinstance(raw_artifacts, list) or not raw_artifacts:
            raise UsageError(f"{where}: [[artifacts]] needed, each with a path and classes")
        for index, raw in enumerate(raw_artifacts):
            spec = _table(
                {"a": raw}, "a", f"{where} [[artifacts]] #{index + 1}", {"path", "classes"}
            )
            if "path" not in spec:
                raise UsageError(f"{where} [[artifacts]] #{index + 1}: no path")
            names = tuple(spec.get("classes", list(classes)))
            if bad := [n for n in names if n not in classes]:
                raise UsageError(f"{where} [[artifacts]] #{index + 1}: unknown class(es) {bad}")
            artifacts.append(FleetArtifact(_resolve(base, spec["path"]), names))
        plan = _table(
            data,
            "bench",
            where,
            {"batches", "threads", "warmup_s", "seconds", "iters", "repeats", "stream"},
        )
        bench = BenchPlan(
            batches=tuple(int(b) for b in plan.get("batches", (1, 8))),
            threads=plan.get("threads"),
            warmup_s=float(plan.get("warmup_s", 1.0)),
            seconds=None if "iters" in plan else float(plan.get("seconds", 2.0)),
            iters=plan.get("iters"),
            repeats=int(plan.get("repeats", 3)),
            stream=int(plan.get("stream", 0)),
        )
        evaluation = None
        if "evaluation" in data:
            ev = _table(
                data, "evaluation", where, {"images", "ann", "dets", "limit", "shards", "flip"}
            )
            if "images" not in ev or "ann" not in ev:
                raise UsageError(f"{where} [evaluation]: images and ann are both needed")
            evaluation = FleetEvaluation(
                image_dir=_resolve(base, ev["images"]),
                ann_file=_resolve(base, ev["ann"]),
                det_file=_resolve(base, ev["dets"]) if ev.get("dets") else None,
                limit=ev.get("limit"),
                shards=int(ev.get("shards", 8)),
                flip=bool(ev.get("flip", True)),
            )
            if evaluation.shards < 1:
                raise UsageError(f"{where} [evaluation]: shards must be ≥ 1")
        return cls(
            address=str(cluster.get("address", "auto")),
            classes=classes,
            artifacts=artifacts,
            bench=bench,
            evaluation=evaluation,
            timeout_s=float(cluster.get("timeout_s", 3600.0)),
            source=Path(where),
        )


def _table(data: dict[str, Any], key: str, where: str, allowed: set[str] | None) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{where}: [{key}] must be a table")
    if allowed is not None and (unknown := set(value) - allowed):
        raise UsageError(
            f"{where}: [{key}] unknown key(s) {sorted(unknown)}; known {sorted(allowed)}"
        )
    return value


def _resolve(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


# ------------------------------------------------------------------------------------------
# What runs on the worker nodes (module-level functions: Ray pickles them by reference)


def _unpack(artifact_tar: bytes, digest: str) -> Path:
    """The artifact in this node's cache (unpacked once per manifest hash), hash-checked."""
    cache = Path(os.environ.get("RTMW_FLEET_CACHE", Path.home() / ".cache" / "rtmw" / "fleet"))
    folder = cache / digest
    if not (folder / "artifact.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache))
        with tarfile.open(fileobj=io.BytesIO(artifact_tar), mode="r") as tar:
            tar.extractall(work, filter="data")
        with contextlib.suppress(OSError):  # another task unpacked it first
            work.replace(folder)
    return folder


def _node_identity() -> dict[str, str]:
    """Which node of the cluster this task runs on (its address and Ray node id)."""
    import socket

    identity = {"node_ip": socket.gethostbyname(socket.gethostname())}
    ray = sys.modules.get("ray")
    # only inside a Ray task: outside one, get_runtime_context() starts a local Ray
    # instance (and writes ~/.ray/auth_token, which then breaks `ray start` clusters)
    if ray is None or not ray.is_initialized():
        return identity
    with contextlib.suppress(Exception):
        identity["node_id"] = ray.get_runtime_context().get_node_id()
        identity["node_ip"] = ray.util.get_node_ip_address()
    return identity


def node_info() -> dict[str, Any]:
    """The node's rtmw (version, source digest), Python, OS and CPU fingerprint, and id."""
    from rtmw.workflows.remote_agent import host_info

    return {**host_info(), **_node_identity()}


def _node_label(identity: dict[str, str]) -> str:
    """ip/node-id prefix: several nodes may share one address (one machine, many boards)."""
    return f"{identity['node_ip']}/{identity.get('node_id', '?')[:8]}"


def bench_job(
    artifact_tar: bytes, digest: str, name: str, device: str, plan: BenchPlan
) -> dict[str, Any]:
    """``rtmw-bench run`` of one artifact on this node: its results document."""
    from rtmw.bench.run import BenchSettings, bench
    from rtmw.bench.timing import TimingPlan

    folder = _unpack(artifact_tar, digest)
    settings = BenchSettings(
        device=device,
        batches=plan.batches,
        threads=plan.threads,
        plan=TimingPlan(
            warmup_s=plan.warmup_s, seconds=plan.seconds, iters=plan.iters, repeats=plan.repeats
        ),
        stream=plan.stream,
    )
    with tempfile.TemporaryDirectory() as out:
        staged = Path(out) / name
        staged.symlink_to(folder, target_is_directory=True)  # rows named as the artifact
        results = bench([staged], settings, Path(out) / "run", name=name, progress=False)
    results["node"] = node_info()
    return results


@dataclass
class Shard:
    index: int
    items: list[Any]  # BoxedImage, paths relative to the shard's image bytes
    images: dict[str, bytes]


def eval_shard(
    artifact_tar: bytes,
    digest: str,
    device: str,
    threads: int | None,
    shard: Shard,
    flip: bool,
    max_batch: int,
) -> dict[str, Any]:
    """COCO-WholeBody results (before rescoring) of one shard's images, in image order; a
    3D artifact's shard also returns its raw poses, so that the driver scores 3D error over
    every shard at once (MPJPE is a mean over keypoints: per-shard means would not merge)."""
    from rtmw import runtimes
    from rtmw.bench.environment import RUNTIME_DEVICE
    from rtmw.harness.accuracy import predict
    from rtmw.pipeline import TopDown

    folder = _unpack(artifact_tar, digest)
    artifact = read_artifact(folder)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        items = []
        for item in shard.items:
            local = Path(work) / item.path.name
            local.write_bytes(shard.images[item.path.name])
            items.append(replace(item, path=local))
        with runtimes.open(artifact, device=RUNTIME_DEVICE[device], threads=threads) as runtime:
            pose = TopDown(runtime.infer, artifact.manifest.input_size, flip_test=flip,
                           max_batch=max_batch, depth=runtime.depth)  # fmt: skip
            results, raw = predict(pose, items)
    return {
        "index": shard.index,
        "results": results,
        "poses": raw if pose.depth is not None else {},
        "seconds": time.perf_counter() - started,
        "node": _node_label(_node_identity()),
        "images": len(items),
    }


# ------------------------------------------------------------------------------------------
# The driver


def merge_shards(eval_set: EvalSet, answers: list[dict[str, Any]]) -> AccuracyRun:
    """One evaluation of every shard's answers (:func:`eval_shard`, in image order): the
    six-part AP of the concatenated results and, for a 3D artifact, the 3D error of every
    shard's poses together: the single-machine evaluation when the nodes agree."""
    from rtmw.harness import AccuracyRun, score
    from rtmw.harness.accuracy import score_3d

    ordered = sorted(answers, key=lambda a: a["index"])
    results = [r for answer in ordered for r in answer["results"]]
    poses = {i: pose for answer in ordered for i, pose in answer.get("poses", {}).items()}
    three_d = score_3d(eval_set, poses) if poses else None
    return AccuracyRun(score(eval_set, results), poses, results, three_d)


def pack_artifact(folder: Path) -> tuple[bytes, str]:
    """(tar of the artifact's files, the manifest's hash): opened hash-checked here first."""
    artifact = read_artifact(folder)
    digests = artifact.file_digests()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(digests):
            tar.add(folder / name, arcname=name, recursive=False)
    # the manifest lists every file's sha256: its own hash names the whole artifact
    return buffer.getvalue(), digests[MANIFEST][:32]


def shard_items(items: list[Any], shards: int) -> list[list[Any]]:
    """Contiguous, near-equal ranges of the image list (order kept: merging concatenates)."""
    count = max(1, min(shards, len(items)))
    bounds = [round(i * len(items) / count) for i in range(count + 1)]
    return [items[bounds[i] : bounds[i + 1]] for i in range(count)]


def _job_name(artifact: FleetArtifact, device_class: str) -> str:
    return f"{artifact.path.name}@{device_class}"


def _failed_document(
    name: str, artifact: Path, status: Status, reason: str, device_class: DeviceClass
) -> ResultsDocument:
    row = {"name": artifact.name, "path": str(artifact), "status": status, "reason": reason}
    return ResultsDocument({
        "name": name,
        "environment": {"host": "–", "device": device_class.device, "cpu": {}},
        "settings": {},
        "baseline": None,
        "entries": [row],
    })  # fmt: skip


@dataclass
class FleetRun:
    documents: list[ResultsDocument]  # one results document per (artifact, class) job
    evaluations: dict[str, dict[str, Any]]  # job name → merged evaluation and its shards
    nodes: dict[str, dict[str, Any]]  # class → probed node info
    out_dir: Path


def run_fleet(
    spec: FleetSpec,
    out_dir: Path,
    *,
    say: Callable[[str], None] = logger.info,
    progress: bool = True,
) -> FleetRun:
    from rtmw.workflows.remote_agent import check_versions, local_identity

    ray = import_backend("ray", "ray")
    # a missing or tampered artifact: one line, before anything connects
    packed = {a.path: pack_artifact(a.path) for a in spec.artifacts}
    ray.init(address=spec.address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        say(
            f"fleet: Ray cluster {spec.address}: "
            + ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items()) if k in spec.classes)
        )
        ours = local_identity()
        nodes: dict[str, dict[str, Any]] = {}
        unusable: dict[str, tuple[Status, str]] = {}
        probe = ray.remote(node_info)
        for name, device_class in spec.classes.items():
            if resources.get(name, 0) < 1:
                unusable[name] = (Status.SKIPPED, f"no node of the cluster advertises {name!r}")
                continue
            try:
                info = ray.get(
                    on_class(probe, device_class).remote(),
                    timeout=min(spec.timeout_s, 300),
                )
            except Exception as exc:
                unusable[name] = (Status.FAILED, f"probe failed: {_reason(exc)}")
                continue
            nodes[name] = info
            if mismatch := check_versions(ours, info):
                unusable[name] = (
                    Status.FAILED,
                    f"version mismatch on {info['node_ip']}: {mismatch}",
                )
        refs = {path: ray.put(tar) for path, (tar, _) in packed.items()}
        documents: dict[str, ResultsDocument] = {}
        pending: dict[Any, tuple[str, FleetArtifact, DeviceClass]] = {}
        job = ray.remote(bench_job)
        for artifact in spec.artifacts:
            for class_name in artifact.classes:
                device_class = spec.classes[class_name]
                name = _job_name(artifact, class_name)
                if class_name in unusable:
                    status, reason = unusable[class_name]
                    documents[name] = _failed_document(
                        name, artifact.path, status, reason, device_class
                    )
                    continue
                plan = replace(spec.bench, threads=device_class.threads or spec.bench.threads)
                ref = on_class(job, device_class).remote(
                    refs[artifact.path],
                    packed[artifact.path][1],
                    artifact.path.name,
                    device_class.device,
                    plan,
                )
                pending[ref] = (name, artifact, device_class)
        _collect(ray, pending, documents, spec.timeout_s, "bench", progress)
        evaluations: dict[str, dict[str, Any]] = {}
        if spec.evaluation is not None:
            evaluations = _sharded_evaluations(
                ray, spec, packed, refs, unusable, documents, progress
            )
    finally:
        ray.shutdown()
    ordered = [documents[_job_name(a, c)] for a in spec.artifacts for c in a.classes]
    run = FleetRun(ordered, evaluations, nodes, out_dir)
    _write_fleet(run, spec)
    return run


def on_class(remote_function: Any, device_class: DeviceClass) -> Any:
    """The Ray task placed on a node of the class: one unit of its resource, no CPU claim
    (the resource alone decides placement), the class's environment, one retry when the
    node dies."""
    return remote_function.options(
        resources={device_class.name: 1}, num_cpus=0, max_retries=1,
        runtime_env={"env_vars": device_class.env},
    )  # fmt: skip


def _reason(exc: BaseException) -> str:
    """The last line of a task's error (Ray wraps the worker's traceback)."""
    cause = getattr(exc, "cause", None) or exc
    lines = [line for line in str(cause).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[-1].strip() if lines else ''}"


def _collect(
    ray: Any,
    pending: dict[Any, tuple[str, FleetArtifact, DeviceClass]],
    documents: dict[str, ResultsDocument],
    timeout_s: float,
    what: str,
    progress: bool,
) -> None:
    """Wait for every job; one past the deadline is cancelled and becomes a failed row."""
    from tqdm import tqdm

    deadline = time.monotonic() + timeout_s
    bar = tqdm(total=len(pending), desc=f"fleet {what}", unit="job", disable=not progress)
    waiting = list(pending)
    while waiting:
        left = deadline - time.monotonic()
        done, waiting = ray.wait(waiting, num_returns=1, timeout=max(left, 0))
        if not done:
            for ref in waiting:
                ray.cancel(ref, force=True)
                name, artifact, device_class = pending[ref]
                documents[name] = _failed_document(
                    name,
                    artifact.path,
                    Status.FAILED,
                    f"timed out after {timeout_s:.0f} s",
                    device_class,
                )
            break
        (ref,) = done
        name, artifact, device_class = pending[ref]
        try:
            document = ResultsDocument(ray.get(ref))
            node = document.pop("node")
            for entry in document.entries:
                entry["path"] = str(artifact.path)
            document["name"] = name
            document["fleet"] = {
                "class": device_class.name,
                "device": device_class.device,
                "node": node,
            }
            documents[name] = document
        except Exception as exc:  # the task failed, or its node died
            documents[name] = _failed_document(
                name, artifact.path, Status.FAILED, _reason(exc), device_class
            )
        bar.update(1)
    bar.close()


def _sharded_evaluations(
    ray: Any,
    spec: FleetSpec,
    packed: dict[Path, tuple[bytes, str]],
    refs: dict[Path, Any],
    unusable: dict[str, tuple[Status, str]],
    documents: dict[str, ResultsDocument],
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Per (artifact, class) job: shards as tasks, the merged six-part evaluation."""
    from tqdm import tqdm

    from rtmw.data.evalset import load_eval_set

    evaluation = spec.evaluation
    assert evaluation is not None
    eval_set = load_eval_set(
        evaluation.image_dir, evaluation.ann_file, evaluation.det_file, limit=evaluation.limit
    )
    shard_refs = []
    for index, items in enumerate(shard_items(eval_set.items, evaluation.shards)):
        images = {item.path.name: item.path.read_bytes() for item in items}
        shard_refs.append(ray.put(Shard(index, items, images)))
    task = ray.remote(eval_shard)
    max_batch = max(spec.bench.batches)
    jobs: dict[str, list[Any]] = {}
    for artifact in spec.artifacts:
        for class_name in artifact.classes:
            name = _job_name(artifact, class_name)
            entry = documents[name].entries[0]
            if class_name in unusable or not entry.ok:
                continue
            if entry.latency_only:
                from rtmw.bench.run import LATENCY_ONLY_REFUSAL

                entry["accuracy_refused"] = LATENCY_ONLY_REFUSAL
                continue
            device_class = spec.classes[class_name]
            threads = device_class.threads or spec.bench.threads
            jobs[name] = [
                on_class(task, device_class).remote(
                    refs[artifact.path],
                    packed[artifact.path][1],
                    device_class.device,
                    threads,
                    shard,
                    evaluation.flip,
                    max_batch,
                )
                for shard in shard_refs
            ]
    merged: dict[str, dict[str, Any]] = {}
    total = sum(len(v) for v in jobs.values())
    bar = tqdm(total=total, desc="fleet eval shards", unit="shard", disable=not progress)
    for name, shard_jobs in jobs.items():
        entry = documents[name].entries[0]
        try:
            answers = []
            for ref in shard_jobs:
                answers.append(ray.get(ref, timeout=spec.timeout_s))
                bar.update(1)
        except Exception as exc:
            for ref in shard_jobs:
                ray.cancel(ref, force=True)
            entry["status"] = Status.FAILED
            entry["reason"] = f"evaluation shard failed: {_reason(exc)}"
            continue
        answers.sort(key=lambda a: a["index"])
        run = merge_shards(eval_set, answers)
        results = run.results
        entry["accuracy"] = run.to_dict()
        entry["accuracy_sharding"] = {
            "shards": len(answers),
            "images": [a["images"] for a in answers],
            "nodes": sorted({a["node"] for a in answers}),
            "seconds": [round(a["seconds"], 3) for a in answers],
        }
        merged[name] = {
            "evaluation": run.to_dict(),
            "results": results,
            "sharding": entry["accuracy_sharding"],
        }
    bar.close()
    if merged:
        data = {
            "ann_file": str(eval_set.ann_file),
            "num_images": len(eval_set.items),
            "num_instances": eval_set.num_instances,
            "box_source": eval_set.box_source,
        }
        for name in merged:
            documents[name]["settings"] = {
                **documents[name].settings,
                "data": data,
                "flip": evaluation.flip,
            }
    return merged


def _write_fleet(run: FleetRun, spec: FleetSpec) -> None:
    from rtmw.bench.report import render

    out = run.out_dir
    out.mkdir(parents=True, exist_ok=True)
    stamped: list[ResultsDocument] = []
    for document in run.documents:
        doc = ResultsDocument(
            RESULTS.stamp({k: v for k, v in document.items() if k in RESULTS.keys})
        )
        job_dir = out / "jobs" / doc.name
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
        stamped.append(doc)
    render(stamped, out)
    summary = {
        "fleet_file": str(spec.source) if spec.source else None,
        "address": spec.address,
        "nodes": run.nodes,
        "jobs": [
            {
                "name": d.name,
                "class": (d.get("fleet") or {}).get("class"),
                "node": ((d.get("fleet") or {}).get("node") or {}).get("node_ip"),
                "status": d.entries[0].status,
                "reason": d.entries[0].reason,
                "results": f"jobs/{d.name}/results.json",
            }
            for d in stamped
        ],
        "evaluations": {
            name: {k: v for k, v in m.items() if k != "results"}
            for name, m in run.evaluations.items()
        },
    }
    (out / "fleet.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def fleet_failed(run: FleetRun) -> bool:
    return any(d["entries"][0]["status"] == Status.FAILED for d in run.documents)


__all__ = [
    "BenchPlan",
    "DeviceClass",
    "FleetArtifact",
    "FleetEvaluation",
    "FleetRun",
    "FleetSpec",
    "RtmwError",
    "merge_shards",
    "run_fleet",
    "shard_items",
]
