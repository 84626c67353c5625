"""Does the demo gate give the same verdict on both CPU classes and for any calibration seed?

Runs `rtmw-demo` for calibration seeds 0, 1, 2, natively and with the CPU ISA capped to
AVX2 (ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY: OpenVINO and torch; onnxruntime and
ncnn cannot be capped), then tabulates every gate check over the six runs: a check whose
verdict differs between runs is listed with its figures, so a flip can be told apart
from a real accuracy difference. Writes results/gate-stability/stability.{json,md}.

    .venv/bin/python tools/gate_stability.py            # about 40 min on 2 cores
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "results" / "_scratch" / "stability"
OUT = ROOT / "results" / "gate-stability"
LANES = {"native": {}, "capped-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}
SEEDS = (0, 1, 2)


def run(lane: str, seed: int) -> dict:
    folder = WORK / f"{lane}-seed{seed}"
    if not (folder / "gate.json").is_file():
        env = {**os.environ, **LANES[lane]}
        demo = [str(Path(sys.executable).with_name("rtmw-demo")), "--out", str(folder),
                "--seconds", "0.3", "--calib-seed", str(seed)]  # fmt: skip
        with (WORK / f"{lane}-seed{seed}.log").open("w") as log:
            subprocess.run(demo, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    result: dict = json.loads((folder / "gate.json").read_text())
    return result


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    runs = {f"{lane}/seed{seed}": run(lane, seed) for lane in LANES for seed in SEEDS}
    table: dict[str, dict[str, dict]] = {}
    for name, result in runs.items():
        for check in result["checks"]:
            key = f"{check['candidate']} {check['part']} {check['metric']}"
            table.setdefault(key, {})[name] = check
    names = list(runs)
    flips = {k: v for k, v in table.items() if len({c["passed"] for c in v.values()}) > 1}
    lines = [
        "# Demo gate stability: 3 calibration seeds × 2 CPU classes",
        "",
        *(
            f"- {name}: {'PASS' if r['passed'] else 'FAIL'}; {'; '.join(r['hosts'][:1])}"
            for name, r in runs.items()
        ),
        "",
        f"{len(table)} checks; {len(table) - len(flips)} give the same verdict in all "
        f"{len(names)} runs; {len(flips)} differ:",
        "",
        "| check | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def cell(check: dict | None) -> str:
        if check is None:
            return "–"
        value = "–" if check["value"] is None else f"{check['value']:.2f}"
        return f"{'pass' if check['passed'] else '**FAIL**'} {value}"

    for key in sorted(flips):
        lines.append(f"| {key} | " + " | ".join(cell(flips[key].get(n)) for n in names) + " |")
    lines += ["", "All checks:", "", "| check | budget | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]  # fmt: skip
    for key in sorted(table):
        budget = next(iter(table[key].values()))["budget"]
        budget_text = "–" if budget is None else f"{budget:g}"
        lines.append(
            f"| {key} | {budget_text} | "
            + " | ".join(cell(table[key].get(n)) for n in names)
            + " |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "stability.md").write_text("\n".join(lines) + "\n")
    (OUT / "stability.json").write_text(
        json.dumps({"runs": runs, "flips": sorted(flips)}, indent=1)
    )
    print("\n".join(lines[: 12 + len(flips)]))


if __name__ == "__main__":
    main()
