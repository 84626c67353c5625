"""Lazy imports of optional backends and tools, failing with one line that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from rtmw.errors import MissingDependency


def import_backend(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{module} is not installed ({exc}); install it with: pip install 'rtmw[{extra}]'"
        ) from None
