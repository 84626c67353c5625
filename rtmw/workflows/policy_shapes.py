"""What a searched INT8 policy shape costs on the published configurations, latency only.

A policy is searched on a model whose accuracy can be judged (the demo model); its shape
(which base policy, which blocks in float or in 16 bits, which weight granularity) names
modules every RTMW shares, so the same shape can be exported from a random-init RTMW-m
or -l. Their accuracy cannot be judged (random logits), their speed can: each INT8
target is exported with its searched settings and with ``head-fp32``, both latency only,
and benched in one run, each artifact in a process of its own. ``make policy-shapes``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtmw.bench.run import BenchSettings, bench
from rtmw.errors import UsageError
from rtmw.export import export, export_options, get_target, unavailable_reason
from rtmw.host import cpu_fingerprint, describe
from rtmw.markdown import table as markdown_table
from rtmw.models import build, get_config, save_checkpoint
from rtmw.runtimes.base import default_threads
from rtmw.schemas import Status
from rtmw.workflows.baseline import BaselineSettings, calibration_for
from rtmw.workflows.policy_search import Candidate, lists_as_tuples

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

HEAD_FP32 = Candidate().settings({})  # the default policy's export settings
SHAPE_MODELS = ("rtmw-m-256x192", "rtmw-l-256x192")


@dataclass
class ShapeRow:
    model: str
    target: str
    policy: str
    crops_per_s: dict[int, float | None]  # per batch
    p50_ms: dict[int, float | None]
    status: str = "ok"


def load_policies(path: Path) -> dict[str, dict[str, Any]]:
    """target → {label, settings} from a search's chosen.json (or the shipped copy)."""
    record = json.loads(path.read_text())
    policies = {t: p for t, p in (record.get("policies") or {}).items() if p.get("settings")}
    if not policies:
        raise UsageError(f"{path}: no chosen INT8 policy in it")
    return policies


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def bench_policy_shapes(
    policies: dict[str, dict[str, Any]],
    out: Path,
    *,
    models: Sequence[str] = SHAPE_MODELS,
    batches: tuple[int, ...] = (1, 8),
    settings: BaselineSettings | None = None,
    say: Say = logger.info,
) -> list[ShapeRow]:
    """Per model and INT8 target: the searched shape against head-fp32; writes README.md."""
    settings = settings or BaselineSettings()
    rows: list[ShapeRow] = []
    for model in models:
        config = get_config(model)
        work = out / "_work" / model
        work.mkdir(parents=True, exist_ok=True)
        checkpoint = work / f"{model}-random.pth"
        if not checkpoint.is_file():
            save_checkpoint(build(model, seed=settings.seed), checkpoint)
        calib = calibration_for(work, config.input_size, settings)
        staged: list[tuple[str, str, Path]] = []
        for target, chosen in policies.items():
            spec = get_target(target)
            if unavailable_reason(spec) is not None:
                say(f"  {model} {target}: not here ({unavailable_reason(spec)})")
                continue
            if chosen["settings"] == HEAD_FP32:
                say(f"  {model} {target}: the search chose head-fp32 itself: nothing to compare")
                continue
            shapes = {"head-fp32": HEAD_FP32, chosen["label"]: chosen["settings"]}
            for label, shape in shapes.items():
                name = f"{target}--{_slug(label)}"
                staging = work / "staged" / name
                if _reusable(staging, checkpoint, shape):
                    say(f"  {model} {target} {label}: exported before (same checkpoint, policy)")
                    staged.append((target, label, staging))
                    continue
                folder = work / "exports" / name
                options = export_options(latency_only=True, **lists_as_tuples(shape))
                result = export(checkpoint, [target], folder, overwrite=True, calib=calib,
                                options=options)[0]  # fmt: skip
                say(f"  {model} {target} {label}: {result.line()}")
                if result.status not in (Status.OK, Status.ONNX_ONLY) or result.path is None:
                    rows.append(ShapeRow(model, target, label, {}, {}, status=result.status))
                    continue
                if staging.exists():
                    shutil.rmtree(staging)
                shutil.copytree(result.path, staging)
                staged.append((target, label, staging))
        threads = settings.threads or default_threads()
        say(f"== {model}: bench {len(staged)} artifacts, batch {batches}, {threads} threads")
        bench_settings = BenchSettings(batches=batches, threads=threads, plan=settings.plan,
                                       draw=0, isolate=True)  # fmt: skip
        run = bench([p for _, _, p in staged], bench_settings, out / model, name=f"shapes-{model}")
        for target, label, path in staged:
            entry = run.entry(path.name)
            ok = entry is not None and entry.ok
            figures = {b: (entry.latency(b) or {}) if entry is not None and ok else {}
                       for b in batches}  # fmt: skip
            rows.append(ShapeRow(
                model, target, label,
                {b: figures[b].get("throughput") for b in batches},
                {b: figures[b].get("p50") for b in batches},
                status="ok" if ok else (entry.reason if entry is not None else "no row"),
            ))  # fmt: skip
    (out / "README.md").write_text(shapes_markdown(rows, policies, batches))
    (out / "shapes.json").write_text(json.dumps(
        {"host": cpu_fingerprint(), "rows": [r.__dict__ for r in rows]}, indent=1, default=str
    ) + "\n")  # fmt: skip
    return rows


def _reusable(staging: Path, checkpoint: Path, shape: dict[str, Any]) -> bool:
    """A staged artifact of this very checkpoint and policy (hashes checked): a rerun
    benches it again without exporting it again."""
    from rtmw.artifact import read_artifact
    from rtmw.errors import ArtifactError
    from rtmw.hashing import sha256_file

    try:
        manifest = read_artifact(staging).manifest
    except ArtifactError:
        return False
    options = manifest.options
    return bool(
        manifest.source.get("sha256") == sha256_file(checkpoint)
        and options.get("policy") == shape["int8_policy"]
        and options.get("weight_granularity", "per-channel")
        == ("per-channel" if shape.get("int8_per_channel", True) else "per-tensor")
        and not shape.get("int8_keep")
        and not shape.get("int8_wide")
    )


def shapes_markdown(rows: list[ShapeRow], policies: dict[str, Any],
                    batches: tuple[int, ...]) -> str:  # fmt: skip
    """One line per model and target: the searched shape's crops/s against head-fp32."""
    big = max(batches)
    header = ["model", "target", "searched policy", f"crops/s batch {big}",
              f"head-fp32 batch {big}", "× head-fp32",
              "p50 ms batch 1 (searched / head-fp32)"]  # fmt: skip
    body = []
    for model in dict.fromkeys(r.model for r in rows):
        for target, chosen in policies.items():
            mine = next((r for r in rows if r.model == model and r.target == target
                         and r.policy == chosen["label"]), None)  # fmt: skip
            head = next((r for r in rows if r.model == model and r.target == target
                         and r.policy == "head-fp32"), None)  # fmt: skip
            if mine is None or head is None:
                continue
            speed, base = mine.crops_per_s.get(big), head.crops_per_s.get(big)
            one, one_head = mine.p50_ms.get(1), head.p50_ms.get(1)
            body.append([
                model, target, chosen["label"], _num(speed), _num(base),
                f"{speed / base:.2f}×" if speed and base else "–",
                f"{_num(one, 2)} / {_num(one_head, 2)}",
            ])  # fmt: skip
    lines = [
        "# Searched INT8 policy shapes on the published configurations (latency only)",
        "",
        f"Measured on: {describe(cpu_fingerprint())}. Random-init weights exported "
        "`--latency-only` with each target's searched policy (from the demo model's search, "
        "results/policy-search) and with head-fp32; one bench run per model, each artifact "
        "in a process of its own. Accuracy cannot be judged on random weights: this is "
        "what the shape costs or saves in speed, not whether it holds on these weights. "
        "Targets whose search chose head-fp32 itself are not listed.",
        "",
        *markdown_table(header, body),
        "",
    ]
    return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
