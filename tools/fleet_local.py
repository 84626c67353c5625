"""A fleet on one machine: results/fleet-local/, and the exact-equality check of sharding.

Starts a Ray head and two worker nodes on 127.0.0.1 (classes ``cpu-vnni`` and
``cpu-avx2``, the latter with oneDNN and ATen capped to AVX2 in its jobs), exports the
demo model to onnx, ort-int8 and openvino-fp32, and runs ``rtmw-bench fleet`` with a
sharded six-part evaluation on held-out synthetic images. Then, per job, the same
evaluation unsharded (one task over every image, on a node of the same class) and, for
the uncapped class, in this process with ``rtmw-bench``'s own harness: the merged sharded
figures must equal both exactly. Writes equality.md/json beside the fleet's report.

    .venv/bin/python tools/fleet_local.py --out results/fleet-local
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from servers import run_with_ray_cluster  # the tests' cluster, loopback-only namespace

CAPS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
WORKERS: list[dict[str, float]] = [{"cpu-vnni": 1}, {"cpu-avx2": 1}]


def _fleet_toml(path: Path, artifacts: list[Path], images: Path, ann: Path, shards: int) -> None:
    caps = ", ".join(f'{k} = "{v}"' for k, v in CAPS.items())
    lines = [
        "[cluster]",
        'address = "auto"',
        "timeout_s = 1800",
        "",
        "[bench]",
        "batches = [1, 8]",
        "threads = 1",
        "seconds = 1.0",
        "repeats = 3",
        "warmup_s = 0.5",
        "",
        "[classes.cpu-vnni]",
        'device = "cpu"',
        "",
        "[classes.cpu-avx2]",
        'device = "cpu"',
        f"env = {{ {caps} }}",
        "",
    ]
    for artifact in artifacts:
        lines += ["[[artifacts]]", f'path = "{artifact}"', 'classes = ["cpu-vnni", "cpu-avx2"]', ""]
    lines += [
        "[evaluation]",
        f'images = "{images}"',
        f'ann = "{ann}"',
        f"shards = {shards}",
        "flip = true",
        "",
    ]
    path.write_text("\n".join(lines))


@click.command()
@click.option("--out", default="results/fleet-local", show_default=True)
@click.option("--images", "count", default=100, show_default=True, help="Synthetic val images.")
@click.option("--shards", default=4, show_default=True)
@click.option("--address", default=None, help="(inside) the cluster this run was started beside")
def main(out: str, count: int, shards: int, address: str | None) -> None:
    if address is None:  # start the cluster, in a loopback-only namespace, and rerun beside it
        argv = [
            sys.executable,
            __file__,
            "--out",
            out,
            "--images",
            str(count),
            "--shards",
            str(shards),
            "--address",
            "{address}",
        ]
        done = run_with_ray_cluster(Path(out) / "_cluster", WORKERS, argv, timeout_s=3600)
        click.echo(done.stdout + done.stderr[-3000:])
        raise SystemExit(done.returncode)
    import ray

    from rtmw import runtimes
    from rtmw.artifact import read_artifact
    from rtmw.calib import build_calibration_set
    from rtmw.data.evalset import load_eval_set
    from rtmw.data.synthetic import make_dataset
    from rtmw.export import export
    from rtmw.harness import run_accuracy, score
    from rtmw.models import demo_checkpoint
    from rtmw.workflows.fleet import FleetSpec, Shard, eval_shard, on_class, run_fleet
    from rtmw.workflows.fleet import pack_artifact as pack

    root = Path(out)
    work = root / "_work"
    val = make_dataset(work / "data", count, 505, split="val", progress=False)
    train = make_dataset(work / "data", 60, 506, split="train", progress=False)
    calib = build_calibration_set(
        train.image_dir,
        input_size=(192, 256),
        ann_file=train.ann_file,
        n=96,
        seed=0,
        progress=False,
    )
    made = export(
        demo_checkpoint(),
        ["onnx", "ort-int8", "openvino-fp32"],
        work / "artifacts",
        overwrite=True,
        calib=calib,
    )
    artifacts = [r.path for r in made if r.status == "ok" and r.path is not None]
    fleet_file = root / "fleet.toml"
    root.mkdir(parents=True, exist_ok=True)
    _fleet_toml(
        fleet_file,
        [a.resolve() for a in artifacts],
        val.image_dir.resolve(),
        val.ann_file.resolve(),
        shards,
    )
    spec = FleetSpec.load(fleet_file)
    eval_set = load_eval_set(val.image_dir, val.ann_file)
    checks = []
    spec = replace(spec, address=address)
    run = run_fleet(spec, root, say=click.echo)
    # the same evaluation unsharded: one task over every image, on the same class
    ray.init(address=address, log_to_driver=False)
    try:
        whole = ray.put(
            Shard(0, eval_set.items, {i.path.name: i.path.read_bytes() for i in eval_set.items})
        )
        task = ray.remote(eval_shard)
        for artifact in artifacts:
            tar, digest = pack(artifact)
            for name in ("cpu-vnni", "cpu-avx2"):
                job = f"{artifact.name}@{name}"
                answer = ray.get(
                    on_class(task, spec.classes[name]).remote(tar, digest, "cpu", 1, whole, True, 8)
                )
                unsharded = score(eval_set, answer["results"]).to_dict()
                merged = run.evaluations[job]["evaluation"]
                checks.append(
                    {
                        "job": job,
                        "shards": run.evaluations[job]["sharding"]["shards"],
                        "against": f"one task on {name}",
                        "equal": merged == unsharded,
                        "wholebody_ap": merged["parts"]["wholebody"]["ap"],
                    }
                )
    finally:
        ray.shutdown()
    # and this process, rtmw-bench's harness, for the uncapped class (same CPU, no caps here)
    for artifact in artifacts:
        with runtimes.open(read_artifact(artifact), device="cpu", threads=1) as runtime:
            local = run_accuracy(
                runtime.infer,
                read_artifact(artifact).manifest.input_size,
                eval_set,
                flip=True,
                max_batch=8,
            ).evaluation.to_dict()
        job = f"{artifact.name}@cpu-vnni"
        merged = run.evaluations[job]["evaluation"]
        checks.append(
            {
                "job": job,
                "shards": run.evaluations[job]["sharding"]["shards"],
                "against": "this process (rtmw-bench's harness)",
                "equal": json.loads(json.dumps(local)) == merged,
                "wholebody_ap": merged["parts"]["wholebody"]["ap"],
            }
        )
    (root / "equality.json").write_text(json.dumps(checks, indent=2) + "\n")
    table = [
        "| job | shards | compared with | every AP/AR figure equal | whole-body AP |",
        "|---|---|---|---|---|",
    ]
    table += [
        f"| {c['job']} | {c['shards']} | {c['against']} | {'yes' if c['equal'] else 'NO'} "
        f"| {100 * c['wholebody_ap']:.2f} |"
        for c in checks
    ]
    (root / "equality.md").write_text(
        f"# Sharded evaluation = single-machine evaluation\n\n{len(eval_set.items)} synthetic "
        f"val images, {eval_set.num_instances} persons, GT boxes, flip test, threads 1, "
        f"max batch 8; made by `tools/fleet_local.py`.\n\n" + "\n".join(table) + "\n"
    )
    click.echo("\n".join(table))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(root / "_cluster", ignore_errors=True)
    if not all(c["equal"] for c in checks):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
