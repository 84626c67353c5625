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
from rtmw.workflows.policy_search import Candidate, SearchResult, search_int8_policy

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

POLICIES_FILE = Path(__file__).with_name("demo_int8_policies.json")
SEARCH_SEED = 303  # the search's held-out images: neither the demo's (202) nor training's
DEFAULT_SETTINGS = Candidate().settings({})  # head-fp32's export settings
# a target the search chose nothing for is exported with head-fp32 and says so


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
    """Search the INT8 targets' policies on the demo model; write the summary and chosen.json.

    Searching some targets again keeps the other targets' choices of an earlier search in
    ``out`` when it was made for the same checkpoint, so one target can be redone."""
    start = time.perf_counter()
    checkpoint = demo_checkpoint(DEMO_NAME)
    digest = sha256_file(checkpoint)
    results: list[SearchResult] = []
    wanted = targets or int8_targets_here(say)
    held = {"images": held_out.num_images, "seed": SEARCH_SEED,
            "split": "search / confirm (alternate images)"}  # fmt: skip
    earlier = _earlier(out / "chosen.json", digest, held, say)
    policies: dict[str, Any] = {t: p for t, p in earlier.get("policies", {}).items()
                                if t not in wanted}  # fmt: skip
    failed: dict[str, str] = {t: w for t, w in earlier.get("not_chosen", {}).items()
                              if t not in wanted}  # fmt: skip
    for target in wanted:
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
    for r in results:
        policies[r.target] = {"label": r.chosen.policy if r.chosen else None,
                              "settings": r.chosen_settings}  # fmt: skip
    chosen = {
        "model": DEMO_NAME,
        "checkpoint_sha256": digest,
        "host": cpu_fingerprint(),
        "held_out": held,
        "policies": dict(sorted(policies.items())),
        "not_chosen": failed,
    }  # fmt: skip
    (out / "chosen.json").write_text(json.dumps(chosen, indent=1) + "\n")
    records = [json.loads(path.read_text())
               for path in sorted((out / "artifacts").glob("policy-search-*.json"))]  # fmt: skip
    records = [r for r in records if r["target"] in policies or r["target"] in failed]
    # the searches' own times (a target redone here, the others from the earlier search)
    minutes = sum(float(r.get("seconds") or 0.0) for r in records) / 60
    say(f"searched in {(time.perf_counter() - start) / 60:.1f} min")
    (out / "summary.md").write_text(summary_markdown(records, failed, minutes))
    return results


def _earlier(path: Path, digest: str, held: dict[str, Any], say: Say) -> dict[str, Any]:
    """An earlier search's chosen.json in the same folder, if made for this checkpoint on
    the same held-out set (choices judged on other data are not merged)."""
    if not path.is_file():
        return {}
    record: dict[str, Any] = json.loads(path.read_text())
    if record.get("checkpoint_sha256") == digest and record.get("held_out") == held:
        return record
    say(f"  {path}: made for another checkpoint or held-out set: its choices are replaced")
    return {}


def summary_markdown(records: list[dict[str, Any]], failed: dict[str, str],
                     minutes: float) -> str:  # fmt: skip
    """Per target: the policy chosen, its speed against head-fp32 and FP32, its drops
    (from each target's ``policy-search-<target>.json``)."""
    header = ["target", "chosen policy", "crops/s", "vs head-fp32", "vs FP32 (onnxruntime)",
              *(f"{p} drop [95%]" for p in PARTS), "confirmed"]  # fmt: skip
    body = []
    for record in records:
        rows = {row["policy"]: row for row in record["rows"]}
        chosen = rows.get(record["chosen"] or "")
        if chosen is None:
            continue
        head = rows.get("head-fp32")
        head_speed = head["crops_per_s"] if head and head["status"] == "passed" else None
        speed = chosen["crops_per_s"] or 0.0
        reference = record.get("reference_fp32_crops_per_s")
        drops = []
        for part in PARTS:
            drop, span = chosen["drops"].get(part), chosen["intervals"].get(part)
            drops.append("–" if drop is None else f"{drop:+.2f}" + (
                f" [{span[0]:+.2f}, {span[1]:+.2f}]" if span else ""))  # fmt: skip
        body.append([
            record["target"], chosen["policy"], f"{speed:.1f}",
            f"{speed / head_speed:.2f}×" if head_speed else (
                "head-fp32 failed" if head and not head["status"].startswith("not tried")
                else "–"),
            f"{speed / reference:.2f}×" if reference else "–",
            *drops, str((record.get("confirmation") or {}).get("status", "–")),
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
        f"Search time {minutes:.1f} min.",
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
    return dict(chosen.get("settings") or DEFAULT_SETTINGS)


def demo_int8_label(checkpoint: Path, target: str) -> str:
    policies = _searched(checkpoint)
    if policies is None:
        return "head-fp32"
    chosen = policies.get(target) or {}
    return str(chosen.get("label") or "head-fp32 (the search chose none)")
