"""``--int8-policy auto``: the fastest INT8 policy that keeps every body part within budget.

NNCF's accuracy control and ModelOpt's AutoCast optimise one scalar; a whole-body model
loses its hands first, so the search judges every part against its own budget with the
gate that judges any artifact (``rtmw.bench.gate``: AP drop per part with an interval,
keypoint error p95 per part). The candidates are the policies a target's quantiser can
express, in the order the sensitivity scan ranks the blocks' damage:

1. ``none`` (even the head quantised), then ``head-fp32``, then ``head-fp32`` plus the
   1, 2, … most damaging blocks in float, then the neck in float (``head-neck-fp32``);
2. where the quantiser has them: per-tensor weights, and 16-bit activations instead of
   float for the most damaging blocks (onnxruntime QDQ: w8a16 there).

Each candidate is exported (and verified against torch, as every export), benched on the
search half of the held-out set against the FP32 reference, and gated. A candidate that
keeps a superset of a passing candidate's float blocks is not tried (it can only be
slower), except ``head-fp32``, the default, which is always judged so that the choice can
be compared with it. Every passing candidate is then timed again in one run, each in a
process of its own, and the fastest is confirmed on the other half of the held-out set,
which the search never saw; if it fails there the next fastest is confirmed. When every
pass fails there, the candidates those passes had pruned (more kept in float) are judged
in a further round, and so on until one is confirmed or none is left. The search
stops at its time budget and says so; its table, plot and the chosen policy's evidence are
written beside the artifact and into its artifact.json.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rtmw.artifact import read_artifact, write_manifest
from rtmw.bench.entry import ResultsDocument
from rtmw.bench.gate import Check, GateResult, load_budgets
from rtmw.bench.run import BenchSettings, bench
from rtmw.bench.timing import TimingPlan
from rtmw.calib.calibset import CalibrationSet
from rtmw.data.evalset import split_annotations
from rtmw.errors import RtmwError, UsageError
from rtmw.export import export, get_target, sensitivity_scan
from rtmw.export.api import export_options
from rtmw.export.context import ExportOptions
from rtmw.export.quant_policy import AXIS_PER_TENSOR, AXIS_WIDE, block_prefixes
from rtmw.keypoints import PARTS
from rtmw.markdown import table as markdown_table
from rtmw.schemas import Status
from rtmw.workflows.gate import gate_results

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

# accuracy on the search half: one batch size, briefly timed (speed is measured again,
# properly, for every passing candidate at the end)
SEARCH_TIMING = TimingPlan(warmup_s=0.2, seconds=0.3, repeats=1)
FINAL_TIMING = TimingPlan(warmup_s=0.5, seconds=1.0, repeats=3)
SPEED_BATCH = 8


@dataclass(frozen=True)
class Candidate:
    """One INT8 policy: a named base policy, blocks kept in float on top of it, weight
    granularity and blocks whose activations are 16-bit."""

    base: str = "head-fp32"
    keep: tuple[str, ...] = ()  # block names (sensitivity scan rows), e.g. backbone.stem
    per_channel: bool = True
    wide: tuple[str, ...] = ()  # block names with int16 activations

    @property
    def label(self) -> str:
        text = self.base
        text += "".join(f" +{block}" for block in self.keep)
        if not self.per_channel:
            text += " per-tensor"
        text += "".join(f" a16:{block}" for block in self.wide)
        return text

    @property
    def slug(self) -> str:
        return _slug(self.label)

    def settings(self, prefixes: dict[str, str]) -> dict[str, Any]:
        """The export settings of this policy (``export_options(**settings)``)."""
        return {
            "int8_policy": self.base,
            "int8_keep": [prefixes[b] for b in self.keep],
            "int8_per_channel": self.per_channel,
            "int8_wide": [prefixes[b] for b in self.wide],
        }

    def options(self, prefixes: dict[str, str], base: ExportOptions) -> ExportOptions:
        settings = self.settings(prefixes)
        return replace(
            base,
            int8_policy=settings["int8_policy"],
            int8_keep=tuple(settings["int8_keep"]),
            int8_per_channel=settings["int8_per_channel"],
            int8_wide=tuple(settings["int8_wide"]),
        )

    def covers(self, other: Candidate) -> bool:
        """Whether this keeps in float, or in 16 bits, everything ``other`` does, with the
        same weight granularity: then it cannot be faster than ``other``."""
        bases = {"none": 0, "head-fp32": 1, "head-neck-fp32": 2}
        return (
            bases[self.base] >= bases[other.base]
            and set(self.keep) >= set(other.keep)
            and set(self.wide) >= set(other.wide)
            and self.per_channel == other.per_channel
        )


def candidates(
    target: str, ranking: Sequence[str], *, depth: int = 3, wide_depth: int = 2
) -> list[Candidate]:
    """The policies tried for ``target``, cheapest in float first: see the module text."""
    spec = get_target(target)
    if spec.precision != "int8":
        raise UsageError(f"{target} is not an INT8 target: it has no INT8 policy")
    axes = spec.int8_axes
    found = [Candidate("none"), Candidate()]
    found += [Candidate(keep=tuple(ranking[:k])) for k in range(1, min(depth, len(ranking)) + 1)]
    found.append(Candidate("head-neck-fp32"))
    if AXIS_PER_TENSOR in axes:
        found.append(Candidate(per_channel=False))
    if AXIS_WIDE in axes:
        found += [Candidate(wide=tuple(ranking[:k]))
                  for k in range(1, min(wide_depth, len(ranking)) + 1)]  # fmt: skip
    return found


@dataclass
class Row:
    """One candidate's outcome on the search half."""

    policy: str
    status: str  # passed | failed | export failed | not tried (…)
    crops_per_s: float | None = None  # batch SPEED_BATCH; the final timing when it passed
    drops: dict[str, float | None] = field(default_factory=dict)  # AP points per part
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    worst_budget_share: float | None = None  # max over parts of drop / budget
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    candidate: dict[str, Any] = field(default_factory=dict)
    confirmed: str | None = None  # on the unseen half: passed | failed: … (None: not confirmed)


@dataclass
class SearchResult:
    target: str
    chosen: Row | None
    rows: list[Row]
    confirmation: dict[str, Any] | None
    stopped_early: bool
    seconds: float
    artifact: Path | None
    # the chosen policy as export settings (export_options(**chosen_settings))
    chosen_settings: dict[str, Any] | None = None
    reference_speed: float | None = None  # onnx FP32 crops/s in the final timing run
    counts: dict[str, int] = field(default_factory=dict)  # judged keypoints per part

    def row(self, label: str) -> Row | None:
        return next((r for r in self.rows if r.policy == label), None)


def _ap_figures(checks: list[Check], candidate: str) -> tuple[dict[str, Any], dict[str, Any]]:
    drops: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float] | None] = {}
    for check in checks:
        if check.candidate == candidate and check.metric == "ap_drop":
            drops[check.part] = check.value
            intervals[check.part] = check.interval
    return drops, intervals


def _judge(verdict: GateResult, name: str, row: Row) -> None:
    checks = [c for c in verdict.checks if c.candidate == name]
    row.drops, row.intervals = _ap_figures(checks, name)
    judged = [c for c in checks if c.metric in ("ap_drop", "px_p95")]
    shares = [c.value / c.budget for c in judged if c.value is not None and c.budget]
    row.worst_budget_share = max(shares) if shares else None
    row.failures = [f"{c.part} {c.metric} {c.value if c.value is None else round(c.value, 2)}"
                    f" > {c.budget}" for c in checks if not c.passed]  # fmt: skip
    row.status = "passed" if checks and all(c.passed for c in checks) else "failed"


class _Bench:
    """Candidates benched against the FP32 reference on one split, gated by one budget."""

    def __init__(self, reference: Path, ann: Path, images: str, budgets: dict[str, Any],
                 work: Path, flip: bool) -> None:  # fmt: skip
        self.reference, self.budgets, self.work = reference, budgets, work
        self.settings = BenchSettings(
            batches=(SPEED_BATCH,), plan=SEARCH_TIMING, image_dir=images, ann_file=str(ann),
            reference=str(reference), draw=0, flip=flip,
        )  # fmt: skip

    def judge(self, artifact: Path, row: Row, tag: str) -> ResultsDocument:
        out = self.work / tag
        run = bench([self.reference, artifact], self.settings, out, name=tag, progress=False)
        entry = run.entry(artifact.name)
        if entry is None or not entry.ok:
            row.status = "failed"
            row.failures = [f"bench: {entry.reason if entry is not None else 'no row'}"]
            return run
        latency = entry.latency(SPEED_BATCH) or {}
        row.crops_per_s = latency.get("throughput")
        verdict = gate_results(out / "results.json", out / "results.json", budgets=self.budgets,
                               candidates=[artifact.name])  # fmt: skip
        _judge(verdict, artifact.name, row)
        return run


def search_int8_policy(
    checkpoint: str | Path,
    target: str,
    out: str | Path,
    *,
    calib: str | Path | CalibrationSet,
    image_dir: str | Path,
    ann_file: str | Path,
    budgets: str | Path | dict[str, Any] | None = None,
    seconds: float = 1800.0,
    depth: int = 3,
    flip: bool = True,
    base_options: ExportOptions | None = None,
    overwrite: bool = False,
    say: Say = logger.info,
) -> SearchResult:
    """Search ``target``'s INT8 policies; the chosen artifact is written to ``out/target``.

    ``image_dir``/``ann_file`` is a held-out set (not the calibration images): its images
    are split in two, one half searched on, the other confirming the choice. Raises
    :class:`RtmwError` when no candidate passes (the table is written first).
    """
    start = time.monotonic()
    spec = get_target(target)
    if spec.precision != "int8":
        raise UsageError(f"--int8-policy auto applies to INT8 targets, not {target}")
    table = budgets if isinstance(budgets, dict) else load_budgets(budgets)
    destination = Path(out) / target
    if destination.exists() and not overwrite:
        raise UsageError(f"{destination} exists (use --overwrite)")
    work = Path(out) / f"policy-search-{target}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    base = base_options or export_options()
    search_ann, confirm_ann = split_annotations(ann_file, work / "splits")

    say(f"policy search {target}: FP32 reference and sensitivity ranking")
    made = export(checkpoint, ["onnx"], work / "reference", overwrite=True, options=base)
    if made[0].status != Status.OK or made[0].path is None:
        raise RtmwError(f"the FP32 reference (onnx) did not export: {made[0].reason}")
    reference = made[0].path
    ranking, prefixes = _ranking(checkpoint, calib, work, base)
    say(f"  blocks by INT8 damage (sensitivity scan): {', '.join(ranking[:6])}")

    searcher = _Bench(reference, search_ann, str(image_dir), table, work / "search", flip)
    confirmer = _Bench(reference, confirm_ann, str(image_dir), table, work / "confirm", flip)
    tried = candidates(target, ranking, depth=depth, wide_depth=min(depth, 2))
    rows = [Row(c.label, "not tried", candidate=asdict(c)) for c in tried]
    built: dict[str, Path] = {}
    passing: list[Candidate] = []  # passed the search half and not refuted on the other
    stopped_early = False
    confirmation: dict[str, Any] | None = None
    chosen: Row | None = None
    counts: dict[str, int] = {}
    reference_speed: float | None = None
    pending = list(range(len(tried)))
    rounds = 0
    while pending and chosen is None:
        # a round: judge what is not covered by a standing pass, then confirm the passes
        for index in pending:
            candidate, row = tried[index], rows[index]
            if time.monotonic() - start > seconds:
                stopped_early = True
                row.status = f"not tried (time budget {seconds:.0f} s spent)"
                continue
            # head-fp32, the default, is always judged: the choice is reported against it
            covered = None if candidate == Candidate() else next(
                (p for p in passing if candidate.covers(p)), None)  # fmt: skip
            if covered is not None:
                row.status = f"not tried (keeps more in float than passing {covered.label})"
                continue
            _try(candidate, row, index, checkpoint, target, work, calib, prefixes, base,
                 searcher, built)  # fmt: skip
            if row.status == "passed":
                passing.append(candidate)
            say(f"  {row.policy:<44} {row.status:<14} {_speed(row.crops_per_s)} "
                f"{'; '.join(row.failures)[:120]}")  # fmt: skip
        fresh = [r for r in rows if r.status == "passed" and r.confirmed is None]
        if fresh:
            rounds += 1
            reference_speed = _final_timing(fresh, built, reference, work / f"timing{rounds}")
        for row in sorted(fresh, key=lambda r: -(r.crops_per_s or 0.0)):
            check = Row(row.policy, "")
            run = confirmer.judge(built[row.policy], check, "confirm-" + _slug(row.policy))
            confirmation = {"policy": row.policy, "status": check.status, "drops": check.drops,
                            "intervals": check.intervals, "failures": check.failures}  # fmt: skip
            row.confirmed = check.status if check.status == "passed" else (
                "failed: " + "; ".join(check.failures))  # fmt: skip
            counts = _judged_counts(run) or counts
            say(f"  confirm {row.policy} on the held-out half: {check.status} "
                f"{'; '.join(check.failures)[:160]}")  # fmt: skip
            if check.status == "passed":
                chosen = row
                break
            # refuted: what it pruned (more kept in float) is judged in the next round
            passing = [c for c in passing if c.label != row.policy]
        pending = [i for i, r in enumerate(rows)
                   if r.status.startswith("not tried (keeps more")]  # fmt: skip
        if chosen is None and pending and not stopped_early:
            say(f"  every standing pass failed the held-out half: {len(pending)} candidates "
                "that keep more in float are judged now")  # fmt: skip
    result = SearchResult(target, chosen, rows, confirmation, stopped_early,
                          time.monotonic() - start, None, reference_speed=reference_speed,
                          counts=counts)  # fmt: skip
    if chosen is not None:
        result.chosen_settings = Candidate(**lists_as_tuples(chosen.candidate)).settings(prefixes)
    write_search(result, Path(out), table)
    if chosen is None:
        why = "stopped at its time budget; " if stopped_early else ""
        passed = [r for r in rows if r.status == "passed"]
        raise RtmwError(
            f"{target}: no INT8 policy passes every part's budget ({why}{len(passed)} passed "
            f"the search half, none the confirmation half): see {work}.md"
        )
    destination = Path(out) / built[chosen.policy].name  # trt-int8-onnx: the stand-in
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(built[chosen.policy], destination)
    _record(destination, result)
    result.artifact = destination
    return result


def _try(candidate: Candidate, row: Row, index: int, checkpoint: str | Path, target: str,
         work: Path, calib: str | Path | CalibrationSet, prefixes: dict[str, str],
         base: ExportOptions, searcher: _Bench, built: dict[str, Path]) -> None:  # fmt: skip
    """Export one candidate (verified against torch, as every export) and judge it."""
    began = time.monotonic()
    exported = export(checkpoint, [target], work / "candidates" / candidate.slug, overwrite=True,
                      calib=calib, options=candidate.options(prefixes, base))[0]  # fmt: skip
    # TensorRT without TensorRT: its Q/DQ ONNX stand-in, verified in onnxruntime
    if exported.status not in (Status.OK, Status.ONNX_ONLY) or exported.path is None:
        row.status = "export failed"
        row.failures = [exported.reason[:300]]
    else:
        built[candidate.label] = exported.path
        searcher.judge(exported.path, row, f"c{index:02d}")
    row.seconds = time.monotonic() - began


def lists_as_tuples(record: dict[str, Any]) -> dict[str, Any]:
    """A JSON record's lists as tuples: a Candidate's fields, or export_options' settings."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in label)[:80]


def _speed(value: float | None) -> str:
    return "–" if value is None else f"{value:7.1f} crops/s"


def _ranking(
    checkpoint: str | Path, calib: str | Path | CalibrationSet, work: Path, base: ExportOptions
) -> tuple[list[str], dict[str, str]]:
    """Blocks the default policy quantises, most damaging first (the sensitivity scan's
    whole-body keypoint error p99), and each block's ONNX node-name prefix."""
    _, _ = sensitivity_scan(checkpoint, calib, work, int8_policy="head-fp32", progress=False)
    rows = json.loads(next(work.glob("sensitivity-*.json")).read_text())
    prefixes = block_prefixes(work / "reference" / "onnx" / "model.onnx")
    ranking = [r["block"] for r in rows if not r.get("kept") and r["block"] in prefixes]
    return ranking, prefixes


def _final_timing(passed: list[Row], built: dict[str, Path], reference: Path, out: Path) -> float:
    """Every passing candidate and the FP32 reference timed again in one run, each in a
    process of its own: the speeds the choice is made on."""
    settings = BenchSettings(batches=(SPEED_BATCH,), plan=FINAL_TIMING, draw=0, isolate=True)
    staged = out / "artifacts"
    staged.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in passed:
        folder = staged / _slug(row.policy)
        if not folder.exists():
            shutil.copytree(built[row.policy], folder)
        paths.append(folder)
    run = bench([reference, *paths], settings, out, name="policy-timing", progress=False)
    for row, folder in zip(passed, paths, strict=True):
        entry = run.entry(folder.name)
        if entry is not None and entry.ok:
            row.crops_per_s = (entry.latency(SPEED_BATCH) or {}).get("throughput")
    ref = run.entry(reference.name)
    return float((ref.latency(SPEED_BATCH) or {}).get("throughput") or 0.0) if ref else 0.0


def _judged_counts(run: ResultsDocument) -> dict[str, int]:
    """Keypoints the px budgets were judged over, per part (the reference places them)."""
    for entry in run.entries:
        parts = ((entry.get("fidelity") or {}).get("parts")) or {}
        if parts:
            return {part: int((parts.get(part) or {}).get("keypoints") or 0) for part in PARTS}
    return {}


def _record(destination: Path, result: SearchResult) -> None:
    """The chosen policy and its evidence in artifact.json (rewritten with its hash)."""
    artifact = read_artifact(destination, check_hashes=False)
    manifest = artifact.manifest
    manifest.options["policy_search"] = search_record(result)
    write_manifest(destination, manifest)
    read_artifact(destination)  # every hash checks again


def search_record(result: SearchResult) -> dict[str, Any]:
    chosen = result.chosen
    return {
        "chosen": None if chosen is None else chosen.policy,
        "chosen_settings": result.chosen_settings,
        "chosen_crops_per_s": None if chosen is None else chosen.crops_per_s,
        "reference_fp32_crops_per_s": result.reference_speed,
        "confirmation": result.confirmation,  # the deciding one; each row has its own
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 1),
        "judged_keypoints": result.counts,
        "rows": [asdict(r) for r in result.rows],
    }


def search_markdown(result: SearchResult, budgets: dict[str, Any]) -> str:
    """The whole search as a table: policy → crops/s, per-part AP drop with interval."""
    drops_budget = budgets.get("precision", {}).get("int8", {}).get("ap_drop") or budgets.get(
        "defaults", {}
    ).get("ap_drop", {})
    header = ["policy", "status", f"crops/s (batch {SPEED_BATCH})", *PARTS, "worst / budget",
              "s"]  # fmt: skip
    body = []
    for row in result.rows:
        cells = []
        for part in PARTS:
            drop = row.drops.get(part)
            span = row.intervals.get(part)
            cells.append("–" if drop is None else f"{drop:+.2f}" + (
                f" [{span[0]:+.2f}, {span[1]:+.2f}]" if span else ""))  # fmt: skip
        mark = " **chosen**" if result.chosen is not None and row is result.chosen else ""
        status = row.status + (f": {'; '.join(row.failures)}" if row.failures
                               and row.status != "passed" else "")  # fmt: skip
        if row.confirmed is not None:
            status += f"; unseen half {row.confirmed}"
        body.append([
            row.policy + mark, status,
            "–" if row.crops_per_s is None else f"{row.crops_per_s:.1f}", *cells,
            "–" if row.worst_budget_share is None else f"{row.worst_budget_share:.2f}",
            f"{row.seconds:.0f}",
        ])  # fmt: skip
    lines = [
        f"# INT8 policy search: {result.target}",
        "",
        "AP drop in points against the FP32 reference on the search half of the held-out set "
        "(95% interval from paired half-sample resampling over images); budgets per part "
        f"{json.dumps(drops_budget)} AP points and the px p95 budgets of the budgets file. "
        "'worst / budget' is the largest drop or keypoint error relative to its budget "
        "(≤ 1 passes). Speeds of passing rows are from a final run of that round's passes, "
        "each candidate in a process of its own; others from the brief search timing. "
        "'unseen half': the confirmation on the half never searched on.",
        "",
        *markdown_table(header, body),
        "",
    ]
    if result.reference_speed:
        lines.append(f"FP32 reference (onnxruntime) in the final timing: "
                     f"{result.reference_speed:.1f} crops/s.")  # fmt: skip
    if result.confirmation is not None:
        c = result.confirmation
        why = f" ({'; '.join(c['failures'])})" if c["failures"] else ""
        lines.append(f"Confirmed on the other half (never searched on): {c['policy']} "
                     f"{c['status']}{why}")  # fmt: skip
    if result.counts:
        lines.append("Judged keypoints per part (px budgets): "
                     + ", ".join(f"{p} {n}" for p, n in result.counts.items()))  # fmt: skip
    if result.stopped_early:
        lines.append("The search stopped at its time budget: rows 'not tried' were not judged.")
    lines.append(f"Search time {result.seconds / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def write_search(result: SearchResult, out: Path, budgets: dict[str, Any]) -> Path:
    md = out / f"policy-search-{result.target}.md"
    md.write_text(search_markdown(result, budgets))
    (out / f"policy-search-{result.target}.json").write_text(
        json.dumps({"target": result.target, **search_record(result)}, indent=1, default=str) + "\n"
    )
    try:
        plot_search(result, out / f"policy-search-{result.target}.png")
    except ImportError as exc:
        logger.warning("no plot (%s): pip install 'rtmw[plot]'", exc)
    return md


def plot_search(result: SearchResult, path: Path) -> Path:
    """Speed against the worst part's share of its budget: passing candidates left of 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in result.rows:
        if row.crops_per_s is None or row.worst_budget_share is None:
            continue
        colour = "tab:green" if row.status == "passed" else "tab:red"
        chosen = result.chosen is not None and row is result.chosen
        ax.scatter(row.worst_budget_share, row.crops_per_s, c=colour, s=90 if chosen else 40,
                   marker="*" if chosen else "o", zorder=3)  # fmt: skip
        ax.annotate(row.policy, (row.worst_budget_share, row.crops_per_s), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")  # fmt: skip
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("worst part: drop or error / its budget (≤ 1 passes)")
    ax.set_ylabel(f"crops/s (batch {SPEED_BATCH})")
    ax.set_title(f"INT8 policy search: {result.target}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
