"""Line counts per package and the longest functions of rtmw, for refactoring notes.

Usage: python tools/code_metrics.py [--top 10] [--root rtmw]
Counts physical lines of every .py file (blank and comment lines included, as `wc -l` does)
and the span of every function or method from its `def` line to its last line.
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path


def package_lines(root: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        package = (
            f"{root.name}/{rel.parts[0]}" if len(rel.parts) > 1 else f"{root.name} (top level)"
        )
        counts[package] += len(path.read_text().splitlines())
    return dict(counts)


def longest_functions(root: Path, top: int) -> list[tuple[int, str]]:
    spans: list[tuple[int, str]] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                spans.append((length, f"{path.relative_to(root.parent)}:{node.lineno} {node.name}"))
    return sorted(spans, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="rtmw")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    root = Path(args.root)
    counts = package_lines(root)
    print("| package | lines |\n|---|---|")
    for package, lines in sorted(counts.items()):
        print(f"| {package} | {lines} |")
    print(f"| total | {sum(counts.values())} |\n")
    print("| lines | function |\n|---|---|")
    for length, where in longest_functions(root, args.top):
        print(f"| {length} | `{where}` |")


if __name__ == "__main__":
    main()
