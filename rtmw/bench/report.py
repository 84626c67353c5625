"""Results files (schema ``rtmw.bench/1``) and what is rendered from them: Markdown, plots.

Rendering reads only the JSON, so ``rtmw-bench report`` can redraw and compare runs
made on other machines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rtmw.errors import DataError, MissingDependency
from rtmw.schemas import RESULTS

SCHEMA = RESULTS.tag
PART_COLUMNS = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
PART_LABELS = {"lefthand": "l-hand", "righthand": "r-hand", "wholebody": "whole"}


def load_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"results file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or RESULTS.problems(data).wrong_tag:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: not an rtmw-bench results file (schema {found!r})")
    problems = RESULTS.problems(data)
    unknown, missing = problems.unknown, problems.missing
    if problems:
        raise DataError(
            f"{path}: malformed results file ("
            + "; ".join(
                [f"unknown key(s) {sorted(unknown)}"] * bool(unknown)
                + [f"missing {sorted(missing)}"] * bool(missing)
            )
            + ")"
        )
    entries = data["entries"]
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and "status" in e for e in entries
    ):
        raise DataError(f"{path}: 'entries' must be a list of objects with a name and a status")
    _refuse_non_finite(entries, path)
    data["_path"] = str(path)
    return data


def _refuse_non_finite(entries: list[dict[str, Any]], path: Path) -> None:
    """AP and keypoint-error figures must be numbers: NaN/Inf would pass or fail a gate by
    accident (NaN compares false both ways)."""
    for entry in entries:
        parts = {**((entry.get("accuracy") or {}).get("parts") or {})}
        for part, figures in parts.items():
            for key in ("ap", "ar"):
                value = (figures or {}).get(key)
                if value is not None and not (isinstance(value, (int, float)) and
                                              math.isfinite(value)):  # fmt: skip
                    raise DataError(f"{path}: {entry['name']} {part} {key} is {value!r}")


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _ap(entry: dict[str, Any], part: str) -> float | None:
    parts = (entry.get("accuracy") or {}).get("parts") or {}
    value = (parts.get(part) or {}).get("ap")
    return None if value is None else 100.0 * value


def table_rows(results: dict[str, Any], run_label: str | None = None) -> list[list[str]]:
    rows = []
    device = results["environment"]["device"]
    for entry in results["entries"]:
        status = (
            entry["status"]
            if entry["status"] == "ok"
            else f"{entry['status']}: {entry.get('reason', '')}"
        )
        latency = entry.get("latency") or {}
        e2e = entry.get("e2e") or {}
        batches = sorted(latency, key=int) or ["–"]
        for batch in batches:
            lat = latency.get(batch, {})
            frame = e2e.get(batch, {})
            ratio = (entry.get("speedup_vs_baseline") or {}).get(batch)
            row = [
                *([run_label] if run_label is not None else []),
                entry.get("target", entry["name"]),
                entry.get("precision", "–"),
                entry.get("device_used") or device,
                str(batch),
                status,
                _fmt(entry.get("size_mb")),
                _fmt(lat.get("p50"), 2),
                _fmt(lat.get("p99"), 2),
                _fmt(lat.get("throughput")),
                _fmt(frame.get("persons_per_s")),
                f"{ratio:.2f}×" if ratio is not None else "–",
                *(_fmt(_ap(entry, part)) for part in PART_COLUMNS),
            ]
            rows.append(row)
    return rows


def markdown(results_list: Sequence[dict[str, Any]]) -> str:
    """One table; with several runs, a leading Run column compares them side by side."""
    several = len(results_list) > 1
    header = [
        *(["Run"] if several else []),
        "Format", "Precision", "Device", "Batch", "Status", "Size MB", "p50 ms", "p99 ms",
        "crops/s", "e2e persons/s", "× baseline",
        *(f"AP {PART_LABELS.get(p, p)}" for p in PART_COLUMNS),
    ]  # fmt: skip
    from rtmw.host import describe

    hosts = [
        f"**Measured on**{' (' + str(r.get('name', '')) + ')' if several else ''}: "
        + (describe(r["environment"]["cpu"]) if "isa_class" in r["environment"].get("cpu", {})
           else "CPU fingerprint not recorded (results from an older rtmw)")
        for r in results_list
    ]  # fmt: skip
    from rtmw.markdown import table

    rows = [
        row
        for results in results_list
        for row in table_rows(
            results,
            results.get("name", Path(results.get("_path", "run")).parent.name) if several else None,
        )
    ]
    lines = [*hosts, "", *table(header, rows)]
    notes = []
    for results in results_list:
        env = results["environment"]
        data = results.get("settings", {}).get("data") or {}
        cpu = env.get("cpu", {})
        notes.append(
            f"- {results.get('name', '')}: {env['device']} — {cpu.get('model')} "
            f"({cpu.get('usable_cores')} cores usable, governor {cpu.get('governor')}), "
            f"threads {results['settings'].get('threads')}, "
            f"flip {results['settings'].get('flip')}; "
            + (
                f"AP on {data.get('num_images')} images / {data.get('num_instances')} persons, "
                f"{data.get('box_source')} boxes ({data.get('ann_file')})"
                if data
                else "no accuracy data given"
            )
        )
        baseline = results.get("baseline")
        if baseline:
            notes.append(
                f"  baseline: {baseline['description']} = "
                f"{baseline['persons_per_s']:.2f} persons/s end to end; × baseline is each "
                "row's end-to-end persons/s over it, same run"
            )
    legend = (
        "p50/p99/crops/s: model inference on a batch of fixed crops. e2e persons/s: one fixed "
        "multi-person frame through preprocess → inference (flip test doubles the crops) → decode."
    )
    return "\n".join([*lines, "", legend, "", *notes]) + "\n"


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("plots need matplotlib: pip install 'rtmw[plot]'") from None
    return plt


def plot_latency_vs_ap(results_list: Sequence[dict[str, Any]], path: Path) -> Path | None:
    points = []
    for results in results_list:
        for entry in results["entries"]:
            ap = _ap(entry, "wholebody")
            frames = entry.get("e2e") or {}
            if entry["status"] != "ok" or ap is None or not frames:
                continue
            best = max(frames.values(), key=lambda f: f["persons_per_s"])
            points.append((1000.0 / best["persons_per_s"], ap, entry["name"]))
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for ms, ap, name in points:
        ax.scatter(ms, ap, s=40)
        ax.annotate(name, (ms, ap), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("end-to-end ms per person (best batch, flip test)")
    ax.set_ylabel("whole-body AP")
    ax.set_title("latency vs whole-body AP")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_part_ap(results_list: Sequence[dict[str, Any]], path: Path) -> Path | None:
    entries = [
        e for r in results_list for e in r["entries"] if e["status"] == "ok" and e.get("accuracy")
    ]
    if not entries:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(PART_COLUMNS) * len(entries) / 3), 4.5))
    width = 0.8 / len(entries)
    for i, entry in enumerate(entries):
        values = [_ap(entry, part) or 0.0 for part in PART_COLUMNS]
        xs = [p + i * width for p in range(len(PART_COLUMNS))]
        ax.bar(xs, values, width=width, label=entry["name"])
    ax.set_xticks([p + 0.4 - width / 2 for p in range(len(PART_COLUMNS))])
    ax.set_xticklabels([PART_LABELS.get(p, p) for p in PART_COLUMNS])
    ax.set_ylabel("AP")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("AP per body part and artifact")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_throughput(results_list: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """End-to-end persons/s per artifact and batch, with the run's baseline as a line.

    Drawn whether or not accuracy was measured, so a latency-only baseline has a plot.
    """
    bars: list[tuple[str, str, float]] = []
    baselines: list[float] = []
    for results in results_list:
        base = (results.get("baseline") or {}).get("persons_per_s")
        if base:
            baselines.append(float(base))
        for entry in results["entries"]:
            if entry["status"] != "ok":
                continue
            for batch, frame in sorted((entry.get("e2e") or {}).items(), key=lambda b: int(b[0])):
                bars.append((entry["name"], batch, float(frame["persons_per_s"])))
    if not bars:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.45 * len(bars)), 4.5), dpi=110)
    labels = [f"{name}\nb{batch}" for name, batch, _ in bars]
    ax.bar(range(len(bars)), [v for _, _, v in bars], color="tab:blue")
    for base in baselines[:1]:
        ax.axhline(base, color="tab:red", linestyle="--", label="onnxruntime FP32, 1 crop/call")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels(labels, fontsize=7, rotation=60, ha="right")
    ax.set_ylabel("end-to-end persons/s (flip test)")
    ax.set_title("throughput per artifact and batch")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def render(results_list: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write results.md and the plots into out_dir; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "results.md"]
    written[0].write_text(markdown(results_list))
    try:
        for maker, name in (
            (plot_latency_vs_ap, "latency_vs_ap.png"),
            (plot_part_ap, "part_ap.png"),
            (plot_throughput, "throughput.png"),
        ):
            made = maker(results_list, out_dir / name)
            if made is not None:
                written.append(made)
    except MissingDependency:
        pass
    return written
