"""``rtmw-bench fleet``: on a real local Ray cluster this test starts (a head and two worker
nodes on 127.0.0.1 with different custom resources), and the fleet file's format."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import has_module
from servers import REQUIRED, private_network_prefix, run_with_ray_cluster

from rtmw.data.synthetic import SyntheticDataset
from rtmw.errors import UsageError
from rtmw.workflows.fleet import FleetSpec, shard_items

WORKERS = [{"cpu-vnni": 1}, {"cpu-avx2": 1, "mislabelled-cuda": 1}]


def _fleet_file(path: Path, artifact: Path, data: SyntheticDataset | None, shards: int = 3) -> Path:
    text = f"""
[cluster]
address = "auto"
timeout_s = 600

[bench]
batches = [1, 2]
threads = 1
iters = 3
repeats = 1
warmup_s = 0

[classes.cpu-vnni]
device = "cpu"

[classes.cpu-avx2]
device = "cpu"
env = {{ ONEDNN_MAX_CPU_ISA = "AVX2", ATEN_CPU_CAPABILITY = "avx2" }}

[classes.mislabelled-cuda]
device = "cuda"

[classes.jetson-orin]
device = "jetson"

[[artifacts]]
path = "{artifact}"
classes = ["cpu-vnni", "cpu-avx2", "mislabelled-cuda", "jetson-orin"]
"""
    if data is not None:
        text += f"""
[evaluation]
images = "{data.image_dir}"
ann = "{data.ann_file}"
shards = {shards}
flip = true
"""
    path.write_text(text)
    return path


def test_fleet_file_mistakes_are_one_line(tmp_path: Path) -> None:
    artifact = tmp_path / "onnx"
    good = FleetSpec.load(_fleet_file(tmp_path / "f.toml", artifact, None))
    assert set(good.classes) == {"cpu-vnni", "cpu-avx2", "mislabelled-cuda", "jetson-orin"}
    assert good.classes["cpu-avx2"].env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert good.bench.iters == 3 and good.bench.seconds is None
    for bad, message in [
        ("[classes.a]\ndevice='tpu'\n[[artifacts]]\npath='x'", "device 'tpu'"),
        ("[classes.a]\n[[artifacts]]\npath='x'\nclasses=['b']", "unknown class"),
        ("[classes.a]\n[[artifacts]]\npath='x'\n[bench]\nbatch=[1]", "unknown key"),
        ("[[artifacts]]\npath='x'", "[classes.NAME] needed"),
        ("[classes.a]\n[[artifacts]]\npath='x'\n[evaluation]\nimages='i'", "both needed"),
        ("[classes.a\n", "not valid TOML"),
    ]:
        (tmp_path / "bad.toml").write_text(bad)
        with pytest.raises(UsageError, match=message.replace("[", r"\[").replace(".", r"\.")):
            FleetSpec.load(tmp_path / "bad.toml")


def test_documented_example_parses() -> None:
    spec = FleetSpec.load(Path(__file__).parent.parent / "docs" / "fleet.example.toml")
    assert set(spec.classes) == {"cpu-vnni", "cpu-avx2", "jetson-orin", "rpi5"}
    assert spec.classes["jetson-orin"].device == "jetson"
    assert [a.classes for a in spec.artifacts][2] == ("jetson-orin",)
    assert spec.evaluation is not None and spec.evaluation.shards == 32


def test_shards_are_contiguous_and_cover_every_image() -> None:
    items = list(range(11))
    shards = shard_items(items, 4)
    assert [len(s) for s in shards] == [3, 3, 2, 3]
    assert [x for s in shards for x in s] == items
    assert shard_items(items[:2], 8) == [[0], [1]]


needs_ray = pytest.mark.skipif(
    not has_module("ray") and not REQUIRED, reason="ray not installed (rtmw[ray])"
)
needs_netns = pytest.mark.skipif(
    private_network_prefix() is None and not REQUIRED,
    reason="unshare cannot make a network namespace here (keeps the test's Ray on loopback)",
)


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory: pytest.TempPathFactory, demo_random_checkpoint: Path) -> Path:
    from rtmw.export import export

    (result,) = export(
        demo_random_checkpoint, ["onnx"], tmp_path_factory.mktemp("fleet-art"), progress=False
    )
    assert result.status == "ok" and result.path is not None
    return result.path


@needs_ray
@needs_netns
@pytest.mark.fleet
@pytest.mark.eval
def test_fleet_merges_classes_and_shards_exactly(
    onnx_artifact: Path,
    synthetic_val: SyntheticDataset,
    tmp_path: Path,
) -> None:
    from rtmw import runtimes
    from rtmw.artifact import read_artifact
    from rtmw.data.evalset import load_eval_set
    from rtmw.harness import run_accuracy

    fleet = _fleet_file(tmp_path / "fleet.toml", onnx_artifact, synthetic_val)
    out = tmp_path / "fleet-out"
    command = [
        sys.executable,
        "-m",
        "rtmw.cli.bench",
        "fleet",
        str(fleet),
        "--address",
        "{address}",
        "--out",
        str(out),
        "-q",
    ]
    done = run_with_ray_cluster(tmp_path / "cluster", WORKERS, command)
    # the mislabelled class fails, as it must: exit 1 with a table, not a traceback
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    summary = json.loads((out / "fleet.json").read_text())
    jobs = {job["name"]: job for job in summary["jobs"]}
    name = onnx_artifact.name
    assert jobs[f"{name}@cpu-vnni"]["status"] == "ok"
    assert jobs[f"{name}@cpu-avx2"]["status"] == "ok"
    assert jobs[f"{name}@jetson-orin"]["status"] == "skipped"
    assert (
        "no node of the cluster advertises 'jetson-orin'" in jobs[f"{name}@jetson-orin"]["reason"]
    )
    assert jobs[f"{name}@mislabelled-cuda"]["status"] == "failed"
    assert "cuda" in jobs[f"{name}@mislabelled-cuda"]["reason"].lower()
    # each class ran on its own node (the head has no CPUs and no class)
    nodes = summary["nodes"]
    assert nodes["cpu-vnni"]["node_id"] != nodes["cpu-avx2"]["node_id"]
    vnni = json.loads((out / "jobs" / f"{name}@cpu-vnni" / "results.json").read_text())
    assert vnni["fleet"]["node"]["node_id"] == nodes["cpu-vnni"]["node_id"]
    assert vnni["entries"][0]["latency"]["2"]["p50"] > 0
    assert vnni["environment"]["cpu"]["isa_class"]  # the node's own fingerprint
    avx2 = json.loads((out / "jobs" / f"{name}@cpu-avx2" / "results.json").read_text())
    assert avx2["environment"]["cpu"]["isa_cap"] == "ONEDNN_MAX_CPU_ISA=AVX2"  # its env applied
    table = (out / "results.md").read_text()
    assert f"{name}@cpu-vnni" in table and f"{name}@jetson-orin" in table

    # the merged sharded evaluation equals the single-machine one, exactly
    eval_set = load_eval_set(synthetic_val.image_dir, synthetic_val.ann_file)
    with runtimes.open(read_artifact(onnx_artifact), device="cpu", threads=1) as runtime:
        input_size = read_artifact(onnx_artifact).manifest.input_size
        single = run_accuracy(runtime.infer, input_size, eval_set, flip=True, max_batch=2)
    for job in ("cpu-vnni", "cpu-avx2"):
        merged = summary["evaluations"][f"{name}@{job}"]
        assert merged["sharding"]["shards"] == 3
        assert sum(merged["sharding"]["images"]) == len(eval_set.items)
        assert merged["evaluation"] == json.loads(json.dumps(single.evaluation.to_dict()))
    assert single.evaluation.parts["wholebody"].ap >= 0  # a number, compared exactly above
