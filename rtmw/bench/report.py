"""Results files (schema ``rtmw.bench/1``) and what is rendered from them: Markdown, plots.

Rendering reads only the JSON, so ``rtmw-bench report`` can redraw and compare runs
made on other machines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtmw.bench.entry import BenchEntry, ResultsDocument, as_document
from rtmw.bench.summary import (
    DETECTOR_HEADER,
    DETECTOR_NOTE,
    PART_COLUMNS,
    PART_LABELS,
    ap_points,
    compact_markdown,
    detector_rows,
)
from rtmw.errors import DataError, MissingDependency
from rtmw.schemas import RESULTS

if TYPE_CHECKING:
    from rtmw.bench.gate import GateResult

SCHEMA = RESULTS.tag
FULL_HEADER = [
    "Format", "Precision", "Device", "Batch", "Threads", "Status", "Size MB", "p50 ms",
    "p99 ms", "crops/s", "GMAC/s", "% of peak", "e2e persons/s", "× baseline",
    "Peak RSS MB",
    *(f"AP {PART_LABELS.get(p, p)}" for p in PART_COLUMNS),
]  # fmt: skip


def load_results(path: str | Path) -> ResultsDocument:
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
    document = ResultsDocument(data)
    _refuse_unknown_vocabulary(document.entries, path)
    _refuse_non_finite(document.entries, path)
    document["_path"] = str(path)
    return document


def _refuse_unknown_vocabulary(entries: list[BenchEntry], path: Path) -> None:
    """A status or verification mode outside the vocabulary is a file from elsewhere."""
    for entry in entries:
        try:
            entry.status, entry.verification  # noqa: B018 - read to check the vocabulary
        except ValueError as exc:
            raise DataError(f"{path}: {entry.name}: {exc}") from None


def _refuse_non_finite(entries: list[BenchEntry], path: Path) -> None:
    """AP and keypoint-error figures must be numbers: NaN/Inf would pass or fail a gate by
    accident (NaN compares false both ways)."""
    for entry in entries:
        parts = {**((entry.accuracy or {}).get("parts") or {})}
        for part, figures in parts.items():
            for key in ("ap", "ar"):
                value = (figures or {}).get(key)
                if value is not None and not (isinstance(value, (int, float)) and
                                              math.isfinite(value)):  # fmt: skip
                    raise DataError(f"{path}: {entry.name} {part} {key} is {value!r}")


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _fraction(value: Any) -> str:
    """A fraction of peak as a percentage, or a range where the clock is not known."""
    if not value:
        return "–"
    low, high = (100 * float(v) for v in value)
    return f"{low:.0f}%" if abs(high - low) < 0.5 else f"{low:.0f}–{high:.0f}%"


def table_rows(results: ResultsDocument, run_label: str | None = None) -> list[list[str]]:
    rows = []
    results = as_document(results)
    device = results.environment["device"]
    for entry in results.entries:
        status = entry.status_label if entry.ok else f"{entry.status}: {entry.reason}"
        if entry.ok and entry.task == "detect":
            status += " (detector)"
        batches = sorted(entry.get("latency") or {}, key=int) or ["–"]
        for batch in batches:
            lat = entry.latency(batch) or {}
            frame = entry.frame(batch) or {}
            ratio = entry.speedup(batch)
            row = [
                *([run_label] if run_label is not None else []),
                entry.route,
                entry.get("precision", "–"),
                entry.get("device_used") or device,
                str(batch),
                str(entry.get("threads", "–")),
                status,
                _fmt(entry.size_mb),
                _fmt(lat.get("p50"), 2),
                _fmt(lat.get("p99"), 2),
                _fmt(lat.get("throughput")),
                _fmt(lat.get("gmacs")),
                _fraction(lat.get("peak_fraction")),
                _fmt(frame.get("persons_per_s")),
                f"{ratio:.2f}×" if ratio is not None else "–",
                _fmt(
                    max(
                        (
                            v
                            for v in (lat.get("peak_rss_mb"), frame.get("peak_rss_mb"))
                            if v is not None
                        ),
                        default=None,
                    ),
                    0,
                ),
                *(_fmt(ap_points(entry, part)) for part in PART_COLUMNS),
            ]
            rows.append(row)
    return rows


def markdown(results_list: Sequence[ResultsDocument], gate: GateResult | None = None) -> str:
    """One table; with several runs, a leading Run column compares them side by side."""
    results_list = [as_document(r) for r in results_list]
    several = len(results_list) > 1
    header = [*(["Run"] if several else []), *FULL_HEADER]
    from rtmw.host import describe

    hosts = [
        f"**Measured on**{' (' + str(r.get('name', '')) + ')' if several else ''}: "
        + (describe(r.environment["cpu"]) if "isa_class" in r.environment.get("cpu", {})
           else "CPU fingerprint not recorded (results from an older rtmw)")
        for r in results_list
    ]  # fmt: skip
    if any(r.settings.get("accuracy_only") for r in results_list):
        hosts.append(
            "**Accuracy only**: nothing was timed (an emulator, a simulator or "
            "a lane under emulation: a timing there is not the device's speed)."
        )
    from rtmw.markdown import table

    rows = [
        row
        for results in results_list
        for row in table_rows(
            results,
            results.get("name", Path(results.path or "run").parent.name) if several else None,
        )
    ]
    full = table(header, rows)
    lines = [*hosts, "", *full]
    if not several:  # the compact table first: which route is fastest, and did it pass
        lines = [*hosts, "", "**At a glance**", "", compact_markdown(results_list[0], gate),
                 "**Every figure**", "", *full]  # fmt: skip
    notes = []
    for results in results_list:
        env = results.environment
        data = results.settings.get("data") or {}
        cpu = env.get("cpu", {})
        notes.append(
            f"- {results.get('name', '')}: {env['device']} — {cpu.get('model')} "
            f"({cpu.get('usable_cores')} cores usable, governor {cpu.get('governor')}), "
            f"threads {results.settings.get('threads')}, "
            f"flip {results.settings.get('flip')}; "
            + (
                f"AP on {data.get('num_images')} images / {data.get('num_instances')} persons, "
                f"{data.get('box_source')} boxes ({data.get('ann_file')})"
                if data
                else "no accuracy data given"
            )
        )
        baseline = results.baseline
        if baseline:
            notes.append(
                f"  baseline: {baseline['description']} = "
                f"{baseline['persons_per_s']:.2f} persons/s end to end; × baseline is each "
                "row's end-to-end persons/s over it, same run"
            )
    legend = (
        "p50/p99/crops/s: model inference on a batch of fixed crops. GMAC/s: crops/s × the "
        "model's MACs per crop; % of peak: over the host's peak for the precision computed "
        "(cores × clock × MACs/cycle, docs/speed.md; a range where the clock is not readable). "
        "e2e persons/s: one fixed multi-person frame through preprocess → inference (flip test "
        "doubles the crops) → decode. Peak RSS: the peak resident memory while the row's timing "
        "ran — of a process that ran only that row where the run isolates rows (the demo, "
        "the baseline), else of this process since the row began. Threads: the same for "
        "every runtime of a run."
    )
    return (
        "\n".join(
            [*lines, "", legend, "", *_table_3d(results_list), *_detector_table(results_list),
             *_stream_table(results_list), *notes]
        )
        + "\n"
    )  # fmt: skip


def _table_3d(results_list: Sequence[ResultsDocument]) -> list[str]:
    """RTMW3D rows: root-aligned MPJPE and PA-MPJPE per part (mm), next to the 2D AP."""
    from rtmw.markdown import table

    rows = []
    for results in results_list:
        for entry in results.entries:
            if not entry.is_3d:
                continue
            three_d = (entry.accuracy or {})["3d"]
            mpjpe, pa = three_d.get("mpjpe_mm") or {}, three_d.get("pa_mpjpe_mm") or {}
            rows.append(
                [
                    entry.route,
                    entry.get("precision", ""),
                    *(_fmt(mpjpe.get(p)) for p in PART_COLUMNS),
                    *(_fmt(pa.get(p)) for p in PART_COLUMNS),
                    _fmt(ap_points(entry, "wholebody")),
                    str(three_d.get("persons", "")),
                ]
            )
    if not rows:
        return []
    header = [
        "Artifact", "Precision",
        *(f"MPJPE {PART_LABELS.get(p, p)}" for p in PART_COLUMNS),
        *(f"PA-MPJPE {PART_LABELS.get(p, p)}" for p in PART_COLUMNS),
        "AP whole", "Persons",
    ]  # fmt: skip
    note = (
        "3D error per part, millimetres: MPJPE after root alignment (mean of the hips), "
        "PA-MPJPE after a whole-body similarity Procrustes; the prediction is placed at the "
        "ground-truth root depth through the annotation's camera, as mmpose's RTMW3D does."
    )
    return ["**3D (RTMW3D)**", "", *table(header, rows), "", note, ""]


def _detector_table(results_list: Sequence[ResultsDocument]) -> list[str]:
    from rtmw.markdown import table

    rows = detector_rows(results_list)
    if not rows:
        return []
    return ["**Person detector**", "", *table(DETECTOR_HEADER, rows), "", DETECTOR_NOTE, ""]


def _stream_table(results_list: Sequence[ResultsDocument]) -> list[str]:
    """The streaming rows beside each route's best synchronous end-to-end figure."""
    from rtmw.markdown import table

    rows = []
    for results in results_list:
        for entry in results.entries:
            run = entry.stream
            if not entry.ok or not run:
                continue
            sync = entry.best_persons_per_s() or 0
            rows.append([
                entry.route, entry.get("precision", "–"), run["async"],
                str(run["frames"]), str(run["in_flight"]), _fmt(run["persons_per_s"]),
                _fmt(run["frame_latency_ms"]["p50"], 1), _fmt(run["frame_latency_ms"]["p99"], 1),
                _fmt(sync), f"{run['persons_per_s'] / sync:.2f}×" if sync else "–",
            ])  # fmt: skip
    if not rows:
        return []
    header = ["Format", "Precision", "Asynchronous inference", "Frames", "In flight",
              "stream persons/s", "frame p50 ms", "frame p99 ms", "sync persons/s (best)",
              "stream / sync"]  # fmt: skip
    intro = (
        "**Streaming** (`--stream`): preprocessing of frame i+1, inference of frame i and "
        "decoding of frame i-1 overlap; frame latency is from the start of its preprocessing "
        "to its decoded keypoints."
    )
    return [intro, "", *table(header, rows), ""]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("plots need matplotlib: pip install 'rtmw[plot]'") from None
    return plt


def plot_latency_vs_ap(results_list: Sequence[ResultsDocument], path: Path) -> Path | None:
    points = []
    for results in results_list:
        for entry in results.entries:
            ap = ap_points(entry, "wholebody")
            best = entry.best_persons_per_s()
            if not entry.ok or ap is None or not best:
                continue
            points.append((1000.0 / best, ap, entry.name))
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


def plot_part_ap(results_list: Sequence[ResultsDocument], path: Path) -> Path | None:
    entries = [e for r in results_list for e in r.entries if e.ok and e.accuracy]
    if not entries:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(PART_COLUMNS) * len(entries) / 3), 4.5))
    width = 0.8 / len(entries)
    for i, entry in enumerate(entries):
        values = [ap_points(entry, part) or 0.0 for part in PART_COLUMNS]
        xs = [p + i * width for p in range(len(PART_COLUMNS))]
        ax.bar(xs, values, width=width, label=entry.name)
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


def plot_throughput(results_list: Sequence[ResultsDocument], path: Path) -> Path | None:
    """End-to-end persons/s per artifact and batch, with the run's baseline as a line.

    Drawn whether or not accuracy was measured, so a latency-only baseline has a plot.
    """
    bars: list[tuple[str, str, float]] = []
    baselines: list[float] = []
    for results in results_list:
        base = (results.baseline or {}).get("persons_per_s")
        if base:
            baselines.append(float(base))
        for entry in results.entries:
            if not entry.ok:
                continue
            for batch in sorted(entry.frame_batches, key=int):
                bars.append((entry.name, batch, entry.persons_per_s(batch) or 0.0))
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


def plot_routes_across_models(
    results_list: Sequence[ResultsDocument], path: Path, batch: str = "8"
) -> Path | None:
    """Crops/s of every route (target) at one batch, one bar per model: how each route
    scales from model to model. Drawn when the runs hold more than one model."""
    speeds: dict[str, dict[str, float]] = {}
    for results in results_list:
        for entry in results.entries:
            figures = entry.latency(batch)
            if entry.ok and figures:
                model = str(entry.get("model", results.get("name", "")))
                speeds.setdefault(model, {})[entry.target] = figures["throughput"]
    if len(speeds) < 2:
        return None
    routes = sorted({route for by_route in speeds.values() for route in by_route})
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7.0, 0.7 * len(routes)), 4.5), dpi=110)
    width = 0.8 / len(speeds)
    for index, (model, by_route) in enumerate(sorted(speeds.items())):
        xs = [r + index * width for r in range(len(routes))]
        ax.bar(xs, [by_route.get(route, 0.0) for route in routes], width=width, label=model)
    ax.set_xticks([r + 0.4 - width / 2 for r in range(len(routes))])
    ax.set_xticklabels(routes, fontsize=8, rotation=45, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel(f"crops/s at batch {batch} (log)")
    ax.set_title("throughput per route across models")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def render(
    results_list: Sequence[ResultsDocument], out_dir: Path, gate: GateResult | None = None
) -> list[Path]:
    """Write results.md, the plots and (for one run) index.html into out_dir; returns what
    was written. ``gate`` fills the gate column and section when the run was gated."""
    results_list = [as_document(r) for r in results_list]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "results.md"]
    written[0].write_text(markdown(results_list, gate))
    try:
        for maker, name in (
            (plot_latency_vs_ap, "latency_vs_ap.png"),
            (plot_part_ap, "part_ap.png"),
            (plot_throughput, "throughput.png"),
            (plot_routes_across_models, "routes_across_models.png"),
        ):
            made = maker(results_list, out_dir / name)
            if made is not None:
                written.append(made)
    except MissingDependency:
        pass
    if len(results_list) == 1:
        from rtmw.bench.html import write_html_report

        full = (FULL_HEADER, table_rows(results_list[0]))
        written.append(write_html_report(out_dir, results_list[0], gate, full))
    return written
