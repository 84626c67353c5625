"""Accuracy gates: budgets per part, fail closed, intervals, JUnit/Markdown outputs."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtmw.bench.gate import (
    CrossHost,
    GateConfigError,
    budget_for,
    gate,
    junit_xml,
    load_budgets,
    markdown,
    write_step_summary,
)
from rtmw.host import cpu_fingerprint

PARTS = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
NO_RESAMPLING = {
    "defaults": {
        "apply_to": "point",
        "resamples": 0,
        "ap_drop": dict.fromkeys(PARTS, 1.0),
        "px_p95": dict.fromkeys(PARTS, 5.0),
    },
    "precision": {"fp16": {"ap_drop": dict.fromkeys(PARTS, 0.2)}},
}
HOST = cpu_fingerprint(
    "vendor_id : AuthenticAMD\nmodel name : AMD EPYC\nflags : avx2 fma avx512f avx512bw "
    "avx512vl avx512_vnni avx512_bf16\n",
    env={},
    arch="x86_64",
)


def _entry(name: str, precision: str, ap: float, px: float | None = 1.0) -> dict:
    entry = {
        "name": name,
        "target": name,
        "precision": precision,
        "status": "ok",
        "model": "rtmw-demo-256x192",
        "input_size": [192, 256],
        "source_sha256": "ab" * 32,
        "accuracy": {"parts": {p: {"ap": ap, "ar": ap} for p in PARTS}},
        "e2e": {"1": {"persons_per_s": 10.0}},
    }
    if px is not None:
        entry["fidelity"] = {
            "parts": {p: {"px_p95": px, "px_p95_interval": [px, px], "keypoints": 500}
                      for p in PARTS}
        }  # fmt: skip
    return entry


def _run(*entries: dict) -> dict:
    return {
        "schema": "rtmw.bench/1",
        "_path": "/nonexistent/results.json",
        "environment": {"device": "cpu", "cpu": dict(HOST)},
        "settings": {
            "flip": True,
            "data": {
                "ann_file": "/nonexistent/ann.json",
                "ann_sha256": "cd" * 32,
                "box_source": "gt",
                "image_ids": [1, 2, 3],
            },
        },
        "entries": list(entries),
    }


def test_passing_and_failing_parts() -> None:
    ref = _entry("onnx", "fp32", 0.600)
    good = _entry("ort-int8", "int8", 0.595)
    hand = copy.deepcopy(good)
    hand["name"] = hand["target"] = "openvino-int8"
    hand["accuracy"]["parts"]["lefthand"]["ap"] = 0.570  # 3 AP points lost
    run = _run(ref, good, hand)
    result = gate(run, run, NO_RESAMPLING)
    by = {(c.candidate, c.part, c.metric): c for c in result.checks}
    assert by[("ort-int8", "wholebody", "ap_drop")].passed
    assert by[("ort-int8", "body", "ap_drop")].value == pytest.approx(0.5)
    assert not by[("openvino-int8", "lefthand", "ap_drop")].passed
    assert by[("openvino-int8", "righthand", "ap_drop")].passed
    assert not result.passed


def test_fp16_budget_is_tighter() -> None:
    run = _run(_entry("onnx", "fp32", 0.600), _entry("onnx-fp16", "fp16", 0.597))
    assert not gate(run, run, NO_RESAMPLING).passed  # 0.3 > 0.2
    run = _run(_entry("onnx", "fp32", 0.600), _entry("onnx-fp16", "fp16", 0.599))
    assert gate(run, run, NO_RESAMPLING).passed


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e["accuracy"]["parts"].pop("face"), "AP missing or NaN"),
        (lambda e: e["accuracy"]["parts"]["foot"].update(ap=float("nan")), "AP missing or NaN"),
        (lambda e: e.pop("fidelity"), "no keypoint-error p95"),
        (lambda e: e["fidelity"]["parts"]["foot"].update(keypoints=40), "only 40 keypoints"),
        (lambda e: e["fidelity"]["parts"]["face"].update(px_p95=float("nan")), "no keypoint-err"),
        (lambda e: e.update(model="rtmw-m-256x192"), "reference model"),
        (lambda e: e.update(input_size=[288, 384]), "input size"),
        (lambda e: e.update(source_sha256="ef" * 32), "different checkpoints"),
        (lambda e: e.update(status="failed", reason="boom"), "candidate failed"),
    ],
)
def test_fails_closed(mutate: object, reason: str) -> None:
    cand = _entry("ort-int8", "int8", 0.6)
    mutate(cand)  # type: ignore[operator]
    run = _run(_entry("onnx", "fp32", 0.6), cand)
    result = gate(run, run, NO_RESAMPLING)
    assert not result.passed
    assert any(reason in c.detail for c in result.checks), [c.detail for c in result.checks]


def test_other_dataset_or_flip_fails_closed() -> None:
    ref_run = _run(_entry("onnx", "fp32", 0.6))
    cand_run = _run(_entry("ort-int8", "int8", 0.6))
    cand_run["settings"]["data"]["ann_sha256"] = "00" * 32
    assert "different data" in gate(ref_run, cand_run, NO_RESAMPLING).checks[0].detail
    cand_run = _run(_entry("ort-int8", "int8", 0.6))
    cand_run["settings"]["flip"] = False
    assert "flip" in gate(ref_run, cand_run, NO_RESAMPLING).checks[0].detail


def test_interval_budget_without_predictions_fails_closed() -> None:
    budgets = copy.deepcopy(NO_RESAMPLING)
    budgets["defaults"].update(apply_to="interval", resamples=50)
    run = _run(_entry("onnx", "fp32", 0.6), _entry("ort-int8", "int8", 0.6))
    result = gate(run, run, budgets)
    assert not result.passed
    assert all("no interval" in c.detail for c in result.checks if c.metric == "ap_drop")


def test_budget_layers_and_validation(tmp_path: Path) -> None:
    defaults = load_budgets()
    int8 = budget_for(defaults, "ort-int8", "int8")
    fp16 = budget_for(defaults, "onnx-fp16", "fp16")
    assert int8.ap_drop["wholebody"] == 1.0 and int8.ap_drop["lefthand"] == 2.0
    assert fp16.ap_drop == dict.fromkeys(PARTS, 0.2)
    custom = {**defaults, "target": {"ort-int8": {"ap_drop": {"lefthand": 3.0}}}}
    assert budget_for(custom, "ort-int8", "int8").ap_drop["lefthand"] == 3.0
    assert budget_for(custom, "ort-int8", "int8").ap_drop["body"] == 1.0
    broken = {"defaults": {"ap_drop": {"body": 1.0}, "px_p95": dict.fromkeys(PARTS, 1.0)}}
    with pytest.raises(GateConfigError, match="lacks parts"):
        budget_for(broken, "x", "int8")
    (tmp_path / "bad.toml").write_text("[defaults\n")
    with pytest.raises(GateConfigError, match="not valid TOML"):
        load_budgets(tmp_path / "bad.toml")
    with pytest.raises(GateConfigError, match="not found"):
        load_budgets(tmp_path / "missing.toml")


def test_px_budget_on_p95_with_its_interval() -> None:
    run = _run(_entry("onnx", "fp32", 0.6), _entry("ort-int8", "int8", 0.6, px=4.0))
    wide = run["entries"][1]["fidelity"]["parts"]["foot"]
    wide["px_p95_interval"] = [3.0, 6.5]
    point = {c.part: c for c in gate(run, run, NO_RESAMPLING).checks if c.metric == "px_p95"}
    assert point["foot"].passed and point["foot"].value == 4.0
    assert "n=500" in point["foot"].detail and "[3.00, 6.50]" in point["foot"].detail
    pessimistic = copy.deepcopy(NO_RESAMPLING)
    pessimistic["defaults"]["apply_to"] = "interval"
    pessimistic["defaults"]["resamples"] = 0
    checks = gate(run, run, pessimistic).checks
    foot = next(c for c in checks if c.metric == "px_p95" and c.part == "foot")
    assert not foot.passed and foot.value == 6.5  # the interval's upper end is judged


def test_runs_from_different_isa_classes_are_not_compared() -> None:
    ref_run = _run(_entry("onnx", "fp32", 0.6))
    cand_run = _run(_entry("ort-int8", "int8", 0.6))
    cand_run["environment"]["cpu"] = cpu_fingerprint(
        "flags : avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16\n",
        env={"ONEDNN_MAX_CPU_ISA": "AVX2"},
        arch="x86_64",
    )
    with pytest.raises(CrossHost, match="ISA class x86-64-avx512-bf16, candidate on x86-64-avx2"):
        gate(ref_run, cand_run, NO_RESAMPLING)
    assert CrossHost.exit_code == 2
    allowed = gate(ref_run, cand_run, NO_RESAMPLING, allow_cross_host=True)
    assert allowed.passed and any("cross-host" in h for h in allowed.hosts)
    old = _run(_entry("ort-int8", "int8", 0.6))
    del old["environment"]["cpu"]["isa_class"]  # results from before fingerprints
    with pytest.raises(CrossHost, match="unrecorded"):
        gate(ref_run, old, NO_RESAMPLING)
    both = _run(_entry("onnx", "fp32", 0.6), _entry("ort-int8", "int8", 0.6))
    text = markdown(gate(both, both, NO_RESAMPLING))
    assert "- reference: AMD EPYC" in text and "ISA class x86-64-avx512-bf16" in text


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[defaults]\nap_dorp = {body = 9.0}\n", "unknown key"),
        ("[defaults]\npx_p99 = {body = 9.0}\n", "px_p99 is now px_p95"),
        ("[defaults]\n[precison.fp16]\nap_drop = {body = 9.0}\n", "unknown table"),
        ("[defaults]\n[precision.fp61]\nap_drop = {body = 9.0}\n", "unknown precision"),
        ("[defaults]\nap_drop = {bdoy = 9.0}\n", "unknown part"),
        ("[defaults]\n[target.x]\nap_drop = {body = 1.0}\nmax_drop = 3\n", "unknown key"),
    ],
)
def test_budget_typos_are_refused(tmp_path: Path, toml: str, message: str) -> None:
    """A typo must never loosen a budget by being ignored (the gate would fail open)."""
    path = tmp_path / "gates.toml"
    path.write_text(toml)
    with pytest.raises(GateConfigError, match=message):
        load_budgets(path)


def test_junit_and_markdown_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _entry("onnx", "fp32", 0.6)
    bad = _entry("ort-int8", "int8", 0.55)
    run = _run(ref, bad)
    result = gate(run, run, NO_RESAMPLING)
    root = ET.fromstring(junit_xml(result))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "ort-int8"
    cases = suite.findall("testcase")
    assert len(cases) == 12  # six parts × (AP drop, keypoint error)
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert set(failed) == {f"{p}.ap_drop" for p in PARTS}
    assert suite.get("failures") == "6"
    text = markdown(result)
    rows = [line for line in text.splitlines() if line.startswith("| ort-int8")]
    assert len(rows) == 12 and all(len(r.split("|")) == 9 for r in rows)
    assert text.startswith("### rtmw accuracy gate: FAIL")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_step_summary(text)
    assert summary.read_text() == text


def test_cli_exit_codes(tmp_path: Path) -> None:
    from rtmw.cli.bench import main

    budgets = tmp_path / "gates.toml"
    budgets.write_text(
        "[defaults]\napply_to = 'point'\nresamples = 0\n"
        + "ap_drop = {"
        + ", ".join(f"{p} = 1.0" for p in PARTS)
        + "}\n"
        + "px_p95 = {"
        + ", ".join(f"{p} = 5.0" for p in PARTS)
        + "}\n"
    )
    for name, ap, code in (("pass", 0.598, 0), ("fail", 0.5, 1)):
        run = _run(_entry("onnx", "fp32", 0.6), _entry("ort-int8", "int8", ap))
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(run))
        junit = tmp_path / f"{name}.xml"
        result = CliRunner().invoke(main, ["gate", "--reference", str(path), "--candidate",
                                           str(path), "--budgets", str(budgets),
                                           "--junit", str(junit)])  # fmt: skip
        assert result.exit_code == code, result.output
        ET.parse(junit)
    usage = CliRunner().invoke(main, ["gate", "--reference", str(tmp_path / "pass.json")])
    assert usage.exit_code == 2
    missing = CliRunner().invoke(main, ["gate", "--reference", str(tmp_path / "none.json"),
                                        "--candidate", str(tmp_path / "none.json")])  # fmt: skip
    assert missing.exit_code == 1 and "not found" in missing.output


def _shift_left_hand(onnx_artifact: Path, out: Path, bins: int = 60) -> Path:
    """A deliberately broken "int8" artifact: the left hand's simcc_x rolled by ``bins``."""
    import shutil

    import onnx
    from onnx import helper

    from rtmw.artifact import Manifest, hash_files, read_artifact, write_manifest

    shutil.copytree(onnx_artifact, out)
    model = onnx.load(str(out / "model.onnx"))
    graph = model.graph
    (x_out,) = [o for o in graph.output if o.name == "simcc_x"]
    for node in graph.node:
        node.output[:] = ["simcc_x_raw" if o == "simcc_x" else o for o in node.output]

    def const(name: str, values: list[int]) -> onnx.NodeProto:
        tensor = helper.make_tensor(name, onnx.TensorProto.INT64, [len(values)], values)
        return helper.make_node("Constant", [], [name], value=tensor)

    big = 1 << 30
    nodes = [
        const("c0", [0]), const("c91", [91]), const("c112", [112]), const("cbig", [big]),
        const("ax1", [1]), const("ax2", [2]), const("cb", [bins]), const("cneg", [-bins]),
        helper.make_node("Slice", ["simcc_x_raw", "c0", "c91", "ax1"], ["before"]),
        helper.make_node("Slice", ["simcc_x_raw", "c91", "c112", "ax1"], ["hand"]),
        helper.make_node("Slice", ["simcc_x_raw", "c112", "cbig", "ax1"], ["after"]),
        helper.make_node("Slice", ["hand", "cneg", "cbig", "ax2"], ["hand_tail"]),
        helper.make_node("Slice", ["hand", "c0", "cneg", "ax2"], ["hand_head"]),
        helper.make_node("Concat", ["hand_tail", "hand_head"], ["hand_rolled"], axis=2),
        helper.make_node("Concat", ["before", "hand_rolled", "after"], [x_out.name], axis=1),
    ]  # fmt: skip
    graph.node.extend(nodes)
    onnx.save(model, str(out / "model.onnx"))
    manifest = read_artifact(out, check_hashes=False).manifest
    data = {**manifest.__dict__, "target": "broken-int8", "precision": "int8"}
    fixed = Manifest(**data)
    fixed.files = hash_files(out, list(fixed.files))
    write_manifest(out, fixed)
    return out


@pytest.fixture(scope="module")
def demo_gate_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained demo model: FP32 reference, FP16, and a broken artifact, benched on 24 images."""
    from conftest import small_demo

    from rtmw.bench import BenchSettings, TimingPlan, bench
    from rtmw.data.synthetic import make_dataset
    from rtmw.export import export

    work = tmp_path_factory.mktemp("gate-demo")
    data = make_dataset(work / "data", 24, seed=77, split="val", progress=False)
    made = export(small_demo(), ["onnx", "onnx-fp16"], work / "artifacts")
    assert all(r.status == "ok" for r in made), [r.line() for r in made]
    broken = _shift_left_hand(work / "artifacts" / "onnx", work / "artifacts" / "broken-int8")
    settings = BenchSettings(
        batches=(4,),
        plan=TimingPlan(warmup_s=0.0, seconds=None, iters=2, repeats=1),
        image_dir=str(data.image_dir),
        ann_file=str(data.ann_file),
        reference=str(work / "artifacts" / "onnx"),
        draw=0,
    )
    paths = [work / "artifacts" / "onnx", work / "artifacts" / "onnx-fp16", broken]
    bench(paths, settings, work / "run", progress=False)
    return work / "run" / "results.json"


def test_gate_on_trained_demo_model(demo_gate_runs: Path, tmp_path: Path) -> None:
    """FP16 passes its tight budget; a model with the left hand's simcc_x shifted fails on the
    hands (flip test mirrors the left-hand logits onto the right hand) and not on the body."""
    from rtmw.bench.report import load_results

    run = load_results(demo_gate_runs)
    budgets = load_budgets()
    # 24 images judge fewer keypoints per part than the default minimum of 100
    budgets["defaults"] = {**budgets["defaults"], "resamples": 50, "px_min_keypoints": 20}
    result = gate(run, run, budgets)
    by = {(c.candidate, c.part, c.metric): c for c in result.checks}
    for part in PARTS:
        assert by[("onnx-fp16", part, "ap_drop")].passed, by[("onnx-fp16", part, "ap_drop")]
        assert by[("onnx-fp16", part, "px_p95")].passed, by[("onnx-fp16", part, "px_p95")]
    assert not by[("broken-int8", "lefthand", "ap_drop")].passed
    hand = by[("broken-int8", "lefthand", "px_p95")]
    assert not hand.passed and "only" not in hand.detail and hand.value is not None
    assert hand.value > 4 * budgets["defaults"]["px_p95"]["lefthand"]
    assert by[("broken-int8", "body", "ap_drop")].passed
    assert by[("broken-int8", "body", "px_p95")].passed
    assert not by[("broken-int8", "righthand", "px_p95")].passed
    assert "interval" in by[("broken-int8", "lefthand", "ap_drop")].detail
    assert not result.passed


def test_one_shot_fails_closed_on_a_target_that_did_not_export(
    demo_random_checkpoint: Path, synthetic_val: object, tmp_path: Path
) -> None:
    """An INT8 target without a calibration set does not export; the one-shot gate must
    fail on it instead of judging only what happened to build."""
    from rtmw.cli.bench import main
    from rtmw.data.synthetic import SyntheticDataset

    assert isinstance(synthetic_val, SyntheticDataset)
    junit = tmp_path / "gate.xml"
    result = CliRunner().invoke(
        main,
        ["gate", str(demo_random_checkpoint), "--targets", "ort-int8",
         "--data", str(synthetic_val.image_dir), "--ann", str(synthetic_val.ann_file),
         "--limit", "2", "--out", str(tmp_path / "work"), "--junit", str(junit)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "| ort-int8 | all | export |" in result.output
    assert "calibration" in result.output
    cases = ET.parse(junit).getroot().iter("testcase")
    assert any(c.get("name") == "all.export" and c.find("failure") is not None for c in cases)


def test_cli_refuses_cross_host_with_one_line(tmp_path: Path) -> None:
    from rtmw.cli.bench import main

    ref, cand = _run(_entry("onnx", "fp32", 0.6)), _run(_entry("ort-int8", "int8", 0.6))
    cand["environment"]["cpu"] = cpu_fingerprint("flags : avx2 fma\n", env={}, arch="x86_64")
    (tmp_path / "ref.json").write_text(json.dumps(ref))
    (tmp_path / "cand.json").write_text(json.dumps(cand))
    budgets = tmp_path / "gates.toml"
    budgets.write_text(
        "[defaults]\nresamples = 0\nap_drop = {"
        + ", ".join(f"{p} = 1.0" for p in PARTS)
        + "}\npx_p95 = {"
        + ", ".join(f"{p} = 5.0" for p in PARTS)
        + "}\n"
    )
    args = ["gate", "--reference", str(tmp_path / "ref.json"), "--candidate",
            str(tmp_path / "cand.json"), "--budgets", str(budgets)]  # fmt: skip
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "x86-64-avx2" in lines[0] and "--allow-cross-host" in lines[0]
    allowed = CliRunner().invoke(main, [*args, "--allow-cross-host"])
    assert allowed.exit_code == 0, allowed.output
    assert "cross-host comparison allowed" in allowed.output
