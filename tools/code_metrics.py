"""Line counts per package, the longest functions and string-key reads, for refactoring notes.

Usage: python tools/code_metrics.py [--top 10] [--root rtmw]
Counts physical lines of every .py file (blank and comment lines included, as `wc -l` does),
the span of every function or method from its `def` line to its last line, and the
string-key reads (``x["key"]`` loads and ``x.get/pop/setdefault("key")`` calls) in the
modules that read results documents (RESULTS_READERS): what typed accessors replace.
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


# the modules that write or read results.json documents (bench rows, gate, reports, fleet,
# remote, CLI); rtmw/bench/entry.py is where the typed accessors spell each key once
RESULTS_READERS = (
    "bench/report.py", "bench/gate.py", "bench/summary.py", "bench/html.py", "bench/run.py",
    "bench/entry.py", "workflows/gate.py", "workflows/fleet.py", "workflows/remote.py",
    "workflows/remote_agent.py", "workflows/demo.py", "cli/",
)  # fmt: skip


def _is_key_read(node: ast.AST) -> bool:
    if isinstance(node, ast.Subscript):
        key = node.slice
        return (
            isinstance(node.ctx, ast.Load)
            and isinstance(key, ast.Constant)
            and isinstance(key.value, str)
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        first = node.args[0]
        return node.func.attr in ("get", "pop", "setdefault") and (
            isinstance(first, ast.Constant) and isinstance(first.value, str)
        )
    return False


def string_key_reads(path: Path) -> int:
    return sum(_is_key_read(node) for node in ast.walk(ast.parse(path.read_text())))


def key_reads(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root.parent)): string_key_reads(path)
        for path in sorted(root.rglob("*.py"))
        if any(path.relative_to(root).as_posix().startswith(m) for m in RESULTS_READERS)
    }


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
    reads = key_reads(root)
    print("\n| string-key reads | module |\n|---|---|")
    for where, count in reads.items():
        if count:
            print(f"| {count} | `{where}` |")
    print(f"| {sum(reads.values())} | total |")


if __name__ == "__main__":
    main()
