"""One module per backend; importing this package registers every built-in target.

Where a new backend goes: a module here (or a package, as ``ncnn`` is, when it needs
helpers) that

* imports its backend library lazily, inside the target functions, via
  :func:`rtmw.optional.import_backend` — no module outside it and its runtime adapter
  (``rtmw.runtimes.<backend>``) may import that library;
* starts from the shared ONNX step (:mod:`rtmw.export.onnx_step`) or the torch model in
  the :class:`~rtmw.export.context.ExportContext`, and for INT8 from the shared policy
  (:mod:`rtmw.export.quant_policy`);
* decorates one function per target with :func:`rtmw.export.registry.register_target`,
  giving the hooks the export API needs (requirements and extra, verification device and
  inputs, host availability, ONNX-only fallback);
* adds its runtime adapter to :data:`rtmw.runtimes.RUNTIMES` for its artifact format.

The contract test (tests/test_targets.py) then exports, verifies and opens the new
targets by their being registered. Third-party packages can register targets too: every
``rtmw.targets`` entry point is imported after the built-ins.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from rtmw.export.targets import (
    executorch,
    litert,
    mnn,
    ncnn,
    onnxruntime,
    openvino,
    qnn,
    rknn,
    tensorrt,
    torch,
)

logger = logging.getLogger(__name__)

BUILTIN_BACKENDS = (
    onnxruntime, openvino, ncnn, mnn, litert, executorch, qnn, rknn, tensorrt, torch,
)  # fmt: skip


def load_plugins() -> list[str]:
    """Import the ``rtmw.targets`` entry points (each registers its own targets)."""
    loaded = []
    for entry in entry_points(group="rtmw.targets"):
        entry.load()
        loaded.append(entry.name)
        logger.info("targets from plugin %s", entry.name)
    return loaded


load_plugins()

__all__ = ["BUILTIN_BACKENDS", "load_plugins"]
