"""The run's HTML report (index.html) opens from disk in headless Chromium: the compact
table, the gate's failing check in words, the plots and skeleton images all render, and the
browser logs no console message. And the compact table says what a reader wants first."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import has_module, small_demo
from servers import REQUIRED

from rtmw.bench.gate import Check, GateResult, explain_check

needs_backends = pytest.mark.skipif(
    not (has_module("onnxruntime") and has_module("xtcocotools")),
    reason="onnxruntime and xtcocotools needed (rtmw[onnx,eval])",
)


def chromium() -> str | None:
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Any]:
    """A real run: the small demo's onnx and onnx-fp16, benched on 6 synthetic images, gated
    against a budget the FP16 row cannot meet (so the report has a failure to explain)."""
    from rtmw.bench.report import render
    from rtmw.bench.run import BenchSettings, bench
    from rtmw.bench.timing import TimingPlan
    from rtmw.data.synthetic import make_dataset
    from rtmw.export import export
    from rtmw.workflows.gate import gate_results

    root = tmp_path_factory.mktemp("html-report")
    data = make_dataset(root / "data", 6, seed=31, split="val", progress=False)
    made = export(small_demo(), ["onnx", "onnx-fp16"], root / "artifacts")
    assert all(r.status == "ok" for r in made), [r.line() for r in made]
    settings = BenchSettings(
        batches=(1, 4), plan=TimingPlan(warmup_s=0.0, iters=3, repeats=1),
        image_dir=str(data.image_dir), ann_file=str(data.ann_file),
        reference=str(root / "artifacts" / "onnx"), draw=2,
    )  # fmt: skip
    out = root / "run"
    run = bench([root / "artifacts"], settings, out, progress=False)
    budgets: dict[str, Any] = {
        "defaults": {"ap_drop": dict.fromkeys(
            ("body", "foot", "face", "lefthand", "righthand", "wholebody"), 100.0),
            "px_p95": dict.fromkeys(
            ("body", "foot", "face", "lefthand", "righthand", "wholebody"), 1000.0),
            "px_min_keypoints": 1, "resamples": 50, "apply_to": "point",
            "confidence": 0.95},
        # no artifact can run 100 times faster than its own FP32: one check fails
        "precision": {"fp16": {"min_speed_ratio": 100.0}},
    }  # fmt: skip
    verdict = gate_results(out / "results.json", out / "results.json", budgets=budgets)
    render([run], out, verdict)
    return out, run, verdict


@needs_backends
def test_compact_table_leads_results_md(gated_run: tuple[Path, dict[str, Any], Any]) -> None:
    out, _, verdict = gated_run
    text = (out / "results.md").read_text()
    assert text.index("At a glance") < text.index("Every figure")
    header = next(line for line in text.splitlines() if line.startswith("| Route"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Route", "Precision", "persons/s", "× baseline", "Size MB", "AP whole-body",
        "Worst part Δ AP", "Gate",
    ]  # fmt: skip
    compact = text[text.index("At a glance") : text.index("Every figure")]
    rows = {line.split("|")[1].strip(): line for line in compact.splitlines()
            if line.startswith("| onnx")}  # fmt: skip
    assert "reference" in rows["onnx"]
    failed = sum(not c.passed for c in verdict.checks)
    assert failed == 1 and f"FAIL ({failed})" in rows["onnx-fp16"]


@needs_backends
def test_html_report_renders_in_headless_chromium(
    gated_run: tuple[Path, dict[str, Any], Any], tmp_path: Path
) -> None:
    browser = chromium()
    if browser is None:
        if REQUIRED:
            pytest.fail("headless Chromium missing (make test-servers installs it)")
        pytest.skip("headless Chromium not installed (Debian's chromium-headless-shell: "
                    "make test-servers)")  # fmt: skip
    out, _, verdict = gated_run
    page = out / "index.html"
    assert page.is_file()
    source = page.read_text()
    assert "http://" not in source and "https://" not in source, "the page fetches something"
    shot = tmp_path / "report.png"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
              "--v=0", "--allow-file-access-from-files"]  # fmt: skip
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    rendered = re.search(r'data-rendered="(\w+)"', dom.stdout)
    images = re.search(r'data-images="(\d+)/(\d+)"', dom.stdout)
    assert rendered and rendered.group(1) == "ok", dom.stdout[:500]
    assert images and images.group(1) == images.group(2)
    assert int(images.group(2)) >= 3  # plots and skeletons
    assert "<table" in dom.stdout and "At a glance" in dom.stdout
    failed = next(c for c in verdict.checks if not c.passed)
    assert explain_check(failed) in dom.stdout.replace("&amp;", "&")
    snap = subprocess.run([*common, "--window-size=1280,1600", f"--screenshot={shot}",
                           page.as_uri()], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert snap.returncode == 0 and shot.stat().st_size > 10_000, snap.stderr[-2000:]


def test_failed_checks_are_explained_in_words() -> None:
    drop = Check("ncnn-fp16", "foot", "ap_drop", 0.24, 0.2, False, "n=440")
    assert explain_check(drop) == "ncnn-fp16 loses 0.24 foot AP (budget 0.20 AP points; n=440)"
    unjudged = Check("ort-int8", "all", "status", None, None, False, "export failed")
    assert explain_check(unjudged) == "ort-int8: status could not be judged — export failed"
    result = GateResult([drop, Check("ncnn-fp16", "body", "ap_drop", 0.1, 1.0, True)])
    from rtmw.bench.gate import verdicts_by_candidate

    assert verdicts_by_candidate(result) == {"ncnn-fp16": "FAIL (1)"}


@needs_backends
def test_demo_summary_says_in_words_what_passed_and_failed(
    gated_run: tuple[Path, dict[str, Any], Any],
) -> None:
    from rtmw.workflows.demo import plain_summary

    _, run, verdict = gated_run
    lines = plain_summary(run, verdict, failures=[], not_here=1, minutes=4.2, full=False)
    text = "\n".join(lines)
    assert (
        lines[0].startswith("done in 4.2 min: 2 artifacts exported")
        and "1 target(s) not" in lines[0]
    )
    assert "the gate caught 1 regression(s) in onnx-fp16 — this is the gate doing its job" in text
    failed = next(c for c in verdict.checks if not c.passed)
    assert f"  - {explain_check(failed)}" in lines
    assert "exit status 0" in text and "make demo-full" in text
    broken = plain_summary(run, verdict, failures=["ncnn-int8 (export failed: x)"], not_here=0,
                           minutes=1.0, full=True)  # fmt: skip
    assert any(line.startswith("FAILED: ") for line in broken)
    assert not any("exit status 0" in line or "demo-full" in line for line in broken)
