"""Bad input, as a hostile or careless user gives it: one line, the right exit code, nothing
half-written, nothing accepted that should not be. Families: checkpoint, export, a kill -9
during an export, concurrency, artifacts and runtimes, TopDown, calibration, bench, gate,
evaluation and training (tools/bad_input_matrix.py runs the wider matrix)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import has_module, small_demo

from rtmw.artifact import ArtifactError, read_artifact, write_manifest
from rtmw.bench.run import find_artifacts
from rtmw.errors import CheckpointError, DataError, InputError, RtmwError
from rtmw.models import read_checkpoint

needs_onnx = pytest.mark.skipif(
    not (has_module("onnx") and has_module("onnxruntime")), reason="onnx/onnxruntime not installed"
)


def _one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and "Traceback" not in output
    return lines[0]


# -- checkpoints ------------------------------------------------------------------------
class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo should-never-run",))


def _safetensors(path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)


def _zip_of_text(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


CHECKPOINT_CASES = {
    "plain pickle that runs code": (
        lambda p: p.write_bytes(pickle.dumps({"state_dict": _RunsCode()})),
        "plain Python pickle",
    ),
    "safetensors": (_safetensors, "safetensors"),
    "onnx model": (
        lambda p: p.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x032.1" + b"\0" * 64),
        "ONNX model",
    ),
    "zip of something else": (_zip_of_text, "zip archive of something else (notes.txt)"),
    "json": (lambda p: p.write_text('{"state_dict": {}}'), "JSON/text file"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_checkpoint_is_named_for_what_it_is(case: str, tmp_path: Path) -> None:
    from rtmw.cli.inspect import main

    make, message = CHECKPOINT_CASES[case]
    path = tmp_path / "model.pth"
    make(path)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_checkpoint(path)
    result = CliRunner().invoke(main, [str(path)])
    assert result.exit_code == 1
    assert message in _one_error_line(result.output)


def test_torch_version_in_meta_is_allowed(tmp_path: Path) -> None:
    """TorchVersion is a str subclass checkpoints carry; weights-only loading must accept it."""
    from rtmw.models import build

    contents = {
        "meta": {"torch": torch.__version__},
        "state_dict": build("rtmw-demo-256x192").state_dict(),
    }
    assert type(contents["meta"]["torch"]).__name__ == "TorchVersion"
    torch.save(contents, tmp_path / "with-version.pth")
    assert read_checkpoint(tmp_path / "with-version.pth").meta["torch"] == str(torch.__version__)


# -- export -----------------------------------------------------------------------------
def test_unsupported_opset_is_one_usage_line(tmp_path: Path) -> None:
    from rtmw.cli.export import main

    args = [str(small_demo()), "--targets", "onnx", "--opset", "7", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "opset 13-21" in _one_error_line(result.output)
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtmw.export import export

    out = tmp_path_factory.mktemp("bad-input-artifacts")
    (result,) = export(small_demo(), ["onnx"], out)
    assert result.status == "ok", result.reason
    return out / "onnx"


def _edited(artifact: Path, tmp_path: Path, edit: object) -> Path:
    copy = tmp_path / "edited"
    shutil.copytree(artifact, copy)
    data = json.loads((copy / "artifact.json").read_text())
    edit(data)  # type: ignore[operator]
    (copy / "artifact.json").write_text(json.dumps(data))
    return copy


@needs_onnx
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(precision="int8"), "edited after export"),
        (lambda d: d.update(input_size=[288, 384]), "edited after export"),
        (lambda d: d.pop("manifest_sha256"), "no manifest_sha256"),
        (lambda d: d.update(extra_field=1), "unknown manifest field"),
        (lambda d: d.update(schema="rtmw.artifact/0"), "unknown artifact schema"),
    ],
)
def test_edited_manifest_is_refused(
    onnx_artifact: Path, tmp_path: Path, edit: object, message: str
) -> None:
    from rtmw import runtimes

    copy = _edited(onnx_artifact, tmp_path, edit)
    with pytest.raises(ArtifactError, match=message):
        runtimes.open(copy)


@needs_onnx
def test_manifest_rewritten_through_the_api_is_accepted(
    onnx_artifact: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "rewritten"
    shutil.copytree(onnx_artifact, copy)
    artifact = read_artifact(copy)
    artifact.manifest.created = "2026-01-01T00:00:00+00:00"
    write_manifest(copy, artifact.manifest)
    assert read_artifact(copy).manifest.created.startswith("2026-01-01")


KILL_SCRIPT = """
import sys
from rtmw.export import export
from rtmw.models import demo_checkpoint
from rtmw.models.zoo import SMALL_DEMO_NAME
export(demo_checkpoint(SMALL_DEMO_NAME), ["onnx", "onnx-fp16"], sys.argv[1])
"""


@needs_onnx
def test_kill_9_during_export_leaves_nothing_that_is_used(tmp_path: Path) -> None:
    """A killed export leaves its hidden work folder; bench never opens it as an artifact,
    read_artifact refuses it, and the next export of that target removes it."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)])
    deadline = time.monotonic() + 240
    staged: list[Path] = []
    while time.monotonic() < deadline and not staged:
        staged = [p for p in out.glob(".onnx.staging-*") if (p / "artifact.json").exists()]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert staged, "the export never reached its verification step"
    leftover = [p for p in out.glob(".onnx.staging-*") if p.is_dir()]
    assert leftover, "expected the killed export's work folder to remain"
    assert not (out / "onnx").exists()
    with pytest.raises(RtmwError, match=r"no artifact\.json"):
        find_artifacts([out])  # the hidden folder is not an artifact
    with pytest.raises(ArtifactError, match="unfinished export"):
        read_artifact(leftover[0])
    from rtmw.export import export

    (result,) = export(small_demo(), ["onnx"], out)
    assert result.status == "ok"
    assert not [p for p in out.iterdir() if p.name.startswith(".onnx.staging")]


@needs_onnx
def test_concurrent_exports_into_one_folder_are_serialised(tmp_path: Path) -> None:
    """Two exports of one target into one folder: one writes it, the other is told it
    exists; before the lock both reported ok and one replaced the other."""
    from rtmw.export import export

    results: list[object] = []

    def run() -> None:
        results.extend(export(small_demo(), ["onnx"], tmp_path))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    statuses = sorted(r.status for r in results)  # type: ignore[attr-defined]
    assert statuses == ["failed", "ok"], statuses
    failed = next(r for r in results if r.status == "failed")  # type: ignore[attr-defined]
    assert "exists" in failed.reason  # type: ignore[attr-defined]
    read_artifact(tmp_path / "onnx")


# -- runtime and TopDown ----------------------------------------------------------------
@needs_onnx
@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (np.zeros((2, 3, 256, 192), np.float64), "float32"),
        (np.zeros((2, 3, 192, 256), np.float32), "must be"),
        (np.zeros((0, 3, 256, 192), np.float32), "N ≥ 1"),
        ([[0.0]], "numpy array"),
    ],
)
def test_runtime_refuses_bad_batches(onnx_artifact: Path, batch: object, message: str) -> None:
    from rtmw import runtimes

    with runtimes.open(onnx_artifact) as runner, pytest.raises(InputError, match=message):
        runner.infer(batch)  # type: ignore[arg-type]


def test_thousand_boxes_run_in_bounded_chunks() -> None:
    from rtmw.pipeline import TopDown

    sizes: list[int] = []

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sizes.append(len(batch))
        return (np.zeros((len(batch), 133, 384), np.float32),
                np.zeros((len(batch), 133, 512), np.float32))  # fmt: skip

    image = np.zeros((480, 640, 3), np.uint8)
    rng = np.random.default_rng(0)
    corner = rng.uniform(0, 400, (1000, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(20, 200, (1000, 2))], axis=1)
    result = TopDown(infer, (192, 256))(image, boxes)
    assert len(result) == 1000 and result.keypoints.shape == (1000, 133, 2)
    assert max(sizes) <= 32 and sum(sizes) == 2000  # flip test doubles the crops
    with pytest.raises(InputError, match="max_batch"):
        TopDown(infer, (192, 256), max_batch=0)


# -- calibration ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calib_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtmw.calib import build_calibration_set, save_calibration_set
    from rtmw.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("bad-calib")
    data = make_dataset(root / "data", 24, seed=5, split="train", progress=False)
    calib = build_calibration_set(
        data.image_dir, input_size=(192, 256), ann_file=data.ann_file, n=32, progress=False
    )
    return save_calibration_set(calib, root / "calib.npz")


def test_damaged_calibration_file_is_one_error(calib_file: Path, tmp_path: Path) -> None:
    from rtmw.calib import load_calibration_set
    from rtmw.calib.calibset import CalibrationError

    damaged = tmp_path / "damaged.npz"
    data = bytearray(calib_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    damaged.write_bytes(bytes(data))
    with pytest.raises(CalibrationError, match=r"damaged one|does not match"):
        load_calibration_set(damaged)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(calib_file.read_bytes()[:1000])
    with pytest.raises(CalibrationError, match="damaged one"):
        load_calibration_set(cut)


def test_calibration_manifest_with_unknown_keys_is_refused(
    calib_file: Path, tmp_path: Path
) -> None:
    from rtmw.calib import load_calibration_set
    from rtmw.calib.calibset import CalibrationError

    with np.load(calib_file, allow_pickle=False) as loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    manifest = json.loads(str(arrays["manifest"]))
    manifest["precison"] = "int8"
    arrays["manifest"] = np.array(json.dumps(manifest))
    np.savez(tmp_path / "odd.npz", **arrays)
    with pytest.raises(CalibrationError, match="unknown calibration manifest key"):
        load_calibration_set(tmp_path / "odd.npz")


@pytest.mark.parametrize("size", ["0x0", "192x0", "8x8", "192", "axb"])
def test_calib_cli_refuses_impossible_input_sizes(size: str, tmp_path: Path) -> None:
    from rtmw.cli.calib import main

    args = ["--images", str(tmp_path), "--ann", str(tmp_path / "a.json"), "--input-size", size,
            "--out", str(tmp_path / "c.npz")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--input-size" in result.output
    assert not (tmp_path / "c.npz").exists()


# -- bench and gate ---------------------------------------------------------------------
def test_results_file_schema_is_checked(tmp_path: Path) -> None:
    from rtmw.bench.report import load_results

    base = {"schema": "rtmw.bench/1", "environment": {}, "settings": {}, "entries": []}
    cases = [
        ({**base, "entires": []}, "unknown key"),
        ({k: v for k, v in base.items() if k != "entries"}, "missing"),
        ({**base, "entries": [{"status": "ok"}]}, "name and a status"),
        ({**base, "entries": [{"name": "x", "status": "ok",
                               "accuracy": {"parts": {"body": {"ap": "NaN"}}}}]}, "body ap"),
    ]  # fmt: skip
    for index, (data, message) in enumerate(cases):
        path = tmp_path / f"r{index}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(DataError, match=message):
            load_results(path)
    nan = tmp_path / "nan.json"
    nan.write_text(
        json.dumps({**base, "entries": [{"name": "x", "status": "ok",
                                         "accuracy": {"parts": {"face": {"ap": float("nan")}}}}]})
    )  # fmt: skip
    with pytest.raises(DataError, match="face ap is nan"):
        load_results(nan)


def test_markdown_cells_cannot_break_a_table() -> None:
    from rtmw.bench.gate import Check, GateResult, markdown

    result = GateResult([Check("x", "all", "status", None, None, False, "a | b\nc")])
    rows = [line for line in markdown(result).splitlines() if line.startswith("| x")]
    assert rows == ["| x | all | status | – | – | **FAIL** | a \\| b c |"]


# -- evaluation -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory: pytest.TempPathFactory) -> object:
    from rtmw.data.synthetic import make_dataset

    return make_dataset(tmp_path_factory.mktemp("bad-eval"), 3, seed=9, progress=False)


def _results_for(ann_file: Path, value: float) -> list[dict]:
    from rtmw.data.evaluation import instance_result

    anns = json.loads(ann_file.read_text())
    image_id = anns["images"][0]["id"]
    keypoints = np.full((133, 2), value)
    return [instance_result(image_id, keypoints, np.ones(133), bbox_score=1.0, area=100.0)]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_keypoints_are_never_scored(tiny_val: object, value: float) -> None:
    pytest.importorskip("xtcocotools", reason="xtcocotools not installed (rtmw[eval])")
    from rtmw.data.evaluation import evaluate_wholebody

    ann = Path(tiny_val.ann_file)  # type: ignore[attr-defined]
    with pytest.raises(DataError, match="NaN or infinite"):
        evaluate_wholebody(ann, _results_for(ann, value), box_source="gt")


def test_image_size_must_match_the_annotation(tiny_val: object, tmp_path: Path) -> None:
    import cv2

    from rtmw.data.evalset import load_eval_set
    from rtmw.harness import predict
    from rtmw.pipeline import TopDown

    images = tmp_path / "images"
    shutil.copytree(tiny_val.image_dir, images)  # type: ignore[attr-defined]
    first = sorted(images.iterdir())[0]
    picture = cv2.imread(str(first))
    cv2.imwrite(str(first), cv2.resize(picture, (picture.shape[1] // 2, picture.shape[0] // 2)))
    eval_set = load_eval_set(images, tiny_val.ann_file)  # type: ignore[attr-defined]

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.zeros((len(batch), 133, 384), np.float32),
                np.zeros((len(batch), 133, 512), np.float32))  # fmt: skip

    with pytest.raises(DataError, match="annotation file says"):
        predict(TopDown(infer, (192, 256)), eval_set.items)


# -- training ---------------------------------------------------------------------------
def test_training_without_data_is_one_line(tmp_path: Path) -> None:
    from rtmw.cli.train import main

    result = CliRunner().invoke(
        main, ["--images", str(tmp_path / "none"), "--ann", str(tmp_path / "none.json"),
               "--iters", "1", "--out", str(tmp_path / "run")],
    )  # fmt: skip
    assert result.exit_code != 0
    _one_error_line(result.output)


@pytest.mark.parametrize(
    "args",
    [
        ["--iters", "0"],
        ["--batch-size", "0"],
        ["--lr", "-1"],
        ["--val-every", "0"],
        ["--threads", "0"],
    ],
)
def test_training_settings_that_cannot_work_are_refused(
    args: list[str], tiny_val: object, tmp_path: Path
) -> None:
    from rtmw.cli.train import main

    data = ["--images", str(tiny_val.image_dir), "--ann", str(tiny_val.ann_file)]  # type: ignore[attr-defined]
    result = CliRunner().invoke(
        main, [*data, "--batch-size", "2", *args, "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 2
    assert "invalid training settings" in _one_error_line(result.output)
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("*.pth"))


def test_unknown_target_is_a_usage_error(tmp_path: Path) -> None:
    from rtmw.cli.export import main

    result = CliRunner().invoke(
        main, [str(small_demo()), "--targets", "onnx,onxx", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown target 'onxx'" in _one_error_line(result.output)
    assert not any(tmp_path.iterdir())


def test_bench_of_a_folder_without_artifacts_is_one_line(tmp_path: Path) -> None:
    from rtmw.cli.bench import main

    (tmp_path / ".onnx.staging-0123abcd").mkdir()  # a killed export's remains only
    (tmp_path / ".onnx.staging-0123abcd" / "artifact.json").write_text("{}")
    result = CliRunner().invoke(main, [str(tmp_path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "no artifact.json" in _one_error_line(result.output)


def test_non_numeric_results_are_refused(tiny_val: object) -> None:
    pytest.importorskip("xtcocotools", reason="xtcocotools not installed (rtmw[eval])")
    from rtmw.data.evaluation import evaluate_wholebody

    ann = Path(tiny_val.ann_file)  # type: ignore[attr-defined]
    broken = _results_for(ann, 1.0)
    broken[0]["face_kpts"] = ["x"] * len(broken[0]["face_kpts"])
    with pytest.raises(DataError, match="not numeric"):
        evaluate_wholebody(ann, broken, box_source="gt")
    scored = _results_for(ann, 1.0)
    scored[0]["score"] = float("nan")
    with pytest.raises(DataError, match="score nan"):
        evaluate_wholebody(ann, scored, box_source="gt")


@needs_onnx
def test_one_shot_gate_does_not_pass_a_tensorrt_stand_in(tiny_val: object, tmp_path: Path) -> None:
    """Without TensorRT, trt-fp16 is only its ONNX stand-in: not gated, so the gate fails
    closed, unless --allow-onnx-only says to judge the stand-in."""
    from rtmw.cli.bench import main
    from rtmw.runtimes.tensorrt import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT present: the engine itself is built and gated")
    base = ["gate", str(small_demo()), "--targets", "trt-fp16",
            "--data", str(tiny_val.image_dir), "--ann", str(tiny_val.ann_file)]  # type: ignore[attr-defined]  # fmt: skip
    budgets = tmp_path / "gates.toml"  # three images: too few to resample intervals
    defaults = (Path(__file__).parents[1] / "rtmw" / "bench" / "gates.toml").read_text()
    budgets.write_text(defaults.replace("resamples = 200", "resamples = 0"))
    base += ["--budgets", str(budgets)]
    refused = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 1, refused.output
    assert "| trt-fp16 | all | export |" in refused.output and "not gated" in refused.output
    allowed = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "b"), "--allow-onnx-only"])
    assert "not gated" not in allowed.output
    assert "| trt-fp16-onnx | body | ap_drop |" in allowed.output


# -- the six found on 488ca1a (issue 29) --------------------------------------------------
def test_calib_cli_with_annotations_lacking_image_id_is_one_line(
    tiny_val: object, tmp_path: Path
) -> None:
    from rtmw.cli.calib import main

    data = json.loads(Path(tiny_val.ann_file).read_text())  # type: ignore[attr-defined]
    for ann in data["annotations"]:
        del ann["image_id"]
    broken = tmp_path / "no_image_id.json"
    broken.write_text(json.dumps(data))
    args = ["--images", str(tiny_val.image_dir), "--ann", str(broken),  # type: ignore[attr-defined]
            "--out", str(tmp_path / "c.npz")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output  # a malformed data file (DataError)
    assert "image_id" in _one_error_line(result.output)
    assert not (tmp_path / "c.npz").exists()


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([{"keypoints": [0.0] * 399, "score": 1.0}], "integer image_id"),
        ([{"image_id": "1", "keypoints": [0.0] * 399}], "integer image_id"),
        ({"image_id": 1, "keypoints": [0.0] * 399}, "list of per-person dicts"),
        ([[1, 2, 3]], "not a per-person dict"),
    ],
)
def test_evaluation_refuses_results_it_cannot_index(
    tiny_val: object, results: object, message: str
) -> None:
    pytest.importorskip("xtcocotools", reason="xtcocotools not installed (rtmw[eval])")
    from rtmw.data.evaluation import evaluate_wholebody

    ann = Path(tiny_val.ann_file)  # type: ignore[attr-defined]
    with pytest.raises(DataError, match=message):
        evaluate_wholebody(ann, results, box_source="gt")  # type: ignore[arg-type]


@needs_onnx
@pytest.mark.parametrize("threads", [-3, 0, 1.5, True])
def test_runtime_refuses_thread_counts_that_mean_nothing(
    onnx_artifact: Path, threads: object
) -> None:
    from rtmw import runtimes
    from rtmw.errors import UsageError

    with pytest.raises(UsageError, match="threads must be a positive integer"):
        runtimes.open(onnx_artifact, threads=threads)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_non_finite_pixels_are_refused_before_inference(
    onnx_artifact: Path, tmp_path_factory: pytest.TempPathFactory, backend: str, value: float
) -> None:
    """NaN gave NaN logits on onnxruntime and finite garbage on OpenVINO: both refuse."""
    from rtmw import runtimes

    if backend == "onnx":
        if not (has_module("onnx") and has_module("onnxruntime")):
            pytest.skip("onnx/onnxruntime not installed")
        artifact = onnx_artifact
    else:
        if not has_module("openvino"):
            pytest.skip("openvino not installed (rtmw[openvino])")
        from rtmw.export import export

        out = tmp_path_factory.getbasetemp() / "nan-openvino"
        if not (out / "openvino-fp32").exists():
            (made,) = export(small_demo(), ["openvino-fp32"], out)
            assert made.status == "ok", made.reason
        artifact = out / "openvino-fp32"
    batch = np.zeros((2, 3, 256, 192), np.float32)
    batch[1, 2, 100, 50] = value
    with runtimes.open(artifact) as runner:
        with pytest.raises(InputError, match="1 NaN or infinite"):
            runner.infer(batch)
        finite = runner.infer(np.zeros((2, 3, 256, 192), np.float32))
    assert all(np.isfinite(out).all() for out in finite.values())


ABANDON_SCRIPT = """
import os, sys
from rtmw.export.context import ExportContext
from rtmw.models import load_checkpoint
from rtmw.models.checkpoint import read_checkpoint
path = sys.argv[1]
model, config = load_checkpoint(path)
context = ExportContext(model, config, read_checkpoint(path))
(context.scratch / "big.bin").write_bytes(b"0" * 1024)
print(context.scratch, flush=True)
os.kill(os.getpid(), 9)
"""


def test_scratch_of_a_killed_export_is_removed_by_the_next(tmp_path: Path) -> None:
    """kill -9 during an export left rtmw-export-* folders (~100 MB with ncnn) that no later
    run removed; the next export's scratch now sweeps those whose owner is dead, and never
    a live one's."""
    from rtmw.scratch import ScratchDir

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", ABANDON_SCRIPT, str(small_demo())], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    abandoned = Path(proc.stdout.strip())
    assert abandoned.is_dir() and abandoned.parent == tmp_path
    live = ScratchDir("rtmw-export-", parent=tmp_path)  # a live owner: this process
    assert not abandoned.exists(), "the killed export's scratch was not swept"
    again = ScratchDir("rtmw-export-", parent=tmp_path)
    assert live.path.is_dir(), "a live owner's scratch was removed"
    live.cleanup()
    again.cleanup()
    assert not list(tmp_path.glob("rtmw-export-*"))


def test_export_refuses_keywords_beside_options(tmp_path: Path) -> None:
    """options= replaces the keyword settings: a keyword given beside it was silently
    ignored; now it is one usage error, before anything is written."""
    from rtmw.errors import UsageError
    from rtmw.export import export, export_options

    with pytest.raises(UsageError, match=r"inside options=.*int8_policy, opset"):
        export(small_demo(), ["onnx"], tmp_path, options=export_options(), opset=13,
               int8_policy="none")  # fmt: skip
    assert not any(tmp_path.iterdir())
