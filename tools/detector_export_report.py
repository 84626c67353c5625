"""Verification figures of every detector artifact in a folder, as a Markdown table.

Usage: python tools/detector_export_report.py ARTIFACTS_DIR [--out export.md]
Reads each artifact.json (nothing is re-run): per target, the outputs' worst relative
|Δ| against torch, the share of torch's decoded boxes matched (same class, IoU and score
within the precision's tolerances), the median and worst IoU, and the p99 score change.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(folder: Path) -> list[list[str]]:
    found = []
    for manifest_path in sorted(folder.glob("*/artifact.json")):
        data = json.loads(manifest_path.read_text())
        if not data.get("detector"):
            continue
        v = data.get("verification") or {}
        tol = v.get("tolerances") or {}

        def fmt(value: object, spec: str) -> str:
            return "–" if value is None else format(value, spec)

        found.append([
            data["target"], data["precision"], data["model"],
            fmt(v.get("max_rel_diff"), ".2e"),
            f"{v.get('matched', 0):.1%} of {v.get('reference_boxes', 0)}",
            fmt(v.get("iou_p50"), ".3f"), fmt(v.get("iou_min"), ".3f"),
            fmt(v.get("score_diff_p99"), ".2g"),
            f"≥{tol.get('min_matched', 0):.0%} at IoU ≥{tol.get('min_iou')} |Δs| ≤"
            f"{tol.get('max_score_diff')}",
            str(v.get("device_used", "")),
        ])  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    header = ["Target", "Precision", "Model", "max rel |Δ|", "boxes matched", "IoU p50",
              "IoU min", "score |Δ| p99", "tolerance", "verified on"]  # fmt: skip

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [line(header), "|" + "---|" * len(header)]
    lines += [line(row) for row in rows(args.folder)]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
