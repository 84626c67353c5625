"""The demo's INT8 policies: searched per target (``rtmw-demo --search-int8``), then used.

The search runs :func:`rtmw.workflows.policy_search.search_int8_policy` for every INT8
target this machine builds, on the demo model, the demo's calibration set and a held-out
synthetic set of its own (not the demo's validation images, not the calibration images).
Its ``chosen.json`` is copied into the package (``demo_int8_policies.json``, tied to the
demo checkpoint's sha256), which ``make demo`` exports with; a checkpoint of another hash
falls back to ``head-fp32`` and says so.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtmw.data.synthetic import SyntheticDataset
from rtmw.errors import RtmwError
from rtmw.export import get_target, unavailable_reason
from rtmw.hashing import sha256_file
from rtmw.host import cpu_fingerprint
from rtmw.keypoints import PARTS
from rtmw.markdown import table as markdown_table
from rtmw.models import DEMO_NAME, demo_checkpoint
from rtmw.workflows.policy_search import SearchResult, search_int8_policy

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

POLICIES_FILE = Path(__file__).with_name("demo_int8_policies.json")
SEARCH_SEED = 303  # the search's held-out images: neither the demo's (202) nor training's
DEFAULT_SETTINGS = {"int8_policy": "head-fp32", "int8_keep": [], "int8_per_channel": True,
                    "int8_wide": []}  # fmt: skip
# where the search chose nothing: trt-int8 (a symmetric Q/DQ ONNX) passed the search half
# under head-fp32 and failed the unseen half on body AP (1.09 > 1.0): its ladder was not
# climbed after that (results/policy-search); the neck in float held it for v2
FALLBACK_SETTINGS = {"trt-int8": {**DEFAULT_SETTINGS, "int8_policy": "head-neck-fp32"}}


def int8_targets_here(say: Say) -> list[str]:
    """Every INT8 target whose backend is installed and which this CPU can run."""
    import importlib.util

    from rtmw.export import list_targets

    found = []
    for name in list_targets():
        spec = get_target(name)
        if spec.precision != "int8":
            continue
        reason = unavailable_reason(spec)
        missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
        if reason or missing:
            say(f"  not searched: {name}: {reason or 'missing ' + ', '.join(missing)}")
            continue
        found.append(name)
    return found


def run_policy_search(
    out: Path, calib_path: Path, held_out: SyntheticDataset, *, seconds: float = 900.0,
    targets: list[str] | None = None, say: Say = print,
) -> list[SearchResult]:  # fmt: skip
    """Search every INT8 target's policy on the demo model; write the summary and chosen.json."""
    start = time.perf_counter()
    checkpoint = demo_checkpoint(DEMO_NAME)
    results: list[SearchResult] = []
    failed: dict[str, str] = {}
    for target in targets or int8_targets_here(say):
        say(f"== {target}")
        try:
            results.append(search_int8_policy(
                checkpoint, target, out / "artifacts", calib=calib_path,
                image_dir=held_out.image_dir, ann_file=held_out.ann_file, seconds=seconds,
                overwrite=True, say=say,
            ))  # fmt: skip
        except RtmwError as exc:
            failed[target] = str(exc)
            say(f"  {target}: {exc}")
    chosen = {
        "model": DEMO_NAME,
        "checkpoint_sha256": sha256_file(checkpoint),
        "host": cpu_fingerprint(),
        "held_out": {"images": held_out.num_images, "seed": SEARCH_SEED,
                     "split": "search / confirm (alternate images)"},
        "policies": {r.target: {"label": r.chosen.policy if r.chosen else None,
                                "settings": r.chosen_settings} for r in results},
        "not_chosen": failed,
    }  # fmt: skip
    (out / "chosen.json").write_text(json.dumps(chosen, indent=1) + "\n")
    (out / "summary.md").write_text(summary_markdown(results, failed, time.perf_counter() - start))
    return results


def summary_markdown(results: list[SearchResult], failed: dict[str, str], seconds: float) -> str:
    """Per target: the policy chosen, its speed against head-fp32 and FP32, its drops."""
    header = ["target", "chosen policy", "crops/s", "vs head-fp32", "vs FP32 (onnxruntime)",
              *(f"{p} drop [95%]" for p in PARTS), "confirmed"]  # fmt: skip
    body = []
    for result in results:
        chosen = result.chosen
        if chosen is None:
            continue
        head = result.row("head-fp32")
        head_speed = head.crops_per_s if head is not None and head.status == "passed" else None
        speed = chosen.crops_per_s or 0.0
        drops = []
        for part in PARTS:
            drop, span = chosen.drops.get(part), chosen.intervals.get(part)
            drops.append("–" if drop is None else f"{drop:+.2f}" + (
                f" [{span[0]:+.2f}, {span[1]:+.2f}]" if span else ""))  # fmt: skip
        confirmation = result.confirmation or {}
        body.append([
            result.target, chosen.policy, f"{speed:.1f}",
            f"{speed / head_speed:.2f}×" if head_speed else (
                "head-fp32 failed" if head is not None and head.status != "not tried"
                else "–"),
            f"{speed / result.reference_speed:.2f}×" if result.reference_speed else "–",
            *drops, str(confirmation.get("status", "–")),
        ])  # fmt: skip
    lines = [
        "# INT8 policies chosen per target (rtmw-demo --search-int8)",
        "",
        "Each target's search table and plot: `policy-search-<target>.md/.png` under "
        "artifacts/. Speeds from each search's final timing run (batch 8, each candidate in "
        "a process of its own); AP drops on the search half, confirmed on the other half.",
        "",
        *markdown_table(header, body),
        "",
        *(f"- {target}: no policy chosen: {why}" for target, why in failed.items()),
        f"Search time {seconds / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=4)
def _searched(checkpoint: Path) -> dict[str, Any] | None:
    """The shipped search record's policies when it was made for this checkpoint (read and
    hashed once per checkpoint, not once per target), else None."""
    if not POLICIES_FILE.is_file():
        return None
    record = json.loads(POLICIES_FILE.read_text())
    if record.get("checkpoint_sha256") != sha256_file(checkpoint):
        return None
    policies: dict[str, Any] = record.get("policies") or {}
    return policies


def demo_int8_settings(checkpoint: Path, target: str, say: Say) -> dict[str, Any]:
    """The searched export settings of ``target`` for this demo checkpoint, or head-fp32."""
    policies = _searched(checkpoint)
    if policies is None:
        if POLICIES_FILE.is_file():
            say(f"  {target}: the searched INT8 policies are for another checkpoint: head-fp32")
        return dict(DEFAULT_SETTINGS)
    chosen = policies.get(target) or {}
    return dict(chosen.get("settings") or FALLBACK_SETTINGS.get(target, DEFAULT_SETTINGS))


def demo_int8_label(checkpoint: Path, target: str) -> str:
    policies = _searched(checkpoint)
    if policies is None:
        return "head-fp32"
    chosen = policies.get(target) or {}
    fallback = FALLBACK_SETTINGS.get(target, DEFAULT_SETTINGS)["int8_policy"]
    return str(chosen.get("label") or f"{fallback} (the search chose none)")
