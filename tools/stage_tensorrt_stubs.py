"""Copy tensorrt-stubs into .typings/ so mypy can check our TensorRT code.

The published stubs are generated and do not parse as-is: they lack a py.typed marker,
name a parameter after the keyword ``in``, import a module that has no stub
(``tensorrt_libs``) and put defaulted parameters before required ones. We mend exactly
those defects in a copy; nothing here changes what the stubs say about the API.
"""

from __future__ import annotations

import re
import shutil
import sys
import sysconfig
from pathlib import Path

TARGET = Path(".typings")
PACKAGES = ("tensorrt", "tensorrt_bindings")


def _fix_signature(line: str) -> str:
    """Give parameters that follow a defaulted one a ``= ...`` default."""
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*->.*)$", line)
    if not match:
        return line
    params, seen_default, out = match.group(2).split(", "), False, []
    for param in params:
        if "=" in param:
            seen_default = True
        elif seen_default and ":" in param and not param.lstrip().startswith("*"):
            param = f"{param} = ..."
        out.append(param)
    return match.group(1) + ", ".join(out) + match.group(3)


def main() -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    if not (site / "tensorrt" / "__init__.pyi").is_file():
        print("tensorrt-stubs not installed: pip install --no-deps tensorrt-stubs", file=sys.stderr)
        return 1
    shutil.rmtree(TARGET, ignore_errors=True)
    TARGET.mkdir()
    for package in PACKAGES:
        shutil.copytree(site / package, TARGET / package)
    for stub in TARGET.rglob("*.pyi"):
        lines = []
        for line in stub.read_text().splitlines():
            if line.startswith("import tensorrt_libs"):
                continue
            line = re.sub(r"([(,] *)in: ", r"\1in_: ", line)
            lines.append(_fix_signature(line))
        stub.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
