"""The architecture as tests: backends stay in their modules, api.py stays orchestration."""

from __future__ import annotations

import ast
from pathlib import Path

import rtmw

ROOT = Path(rtmw.__file__).parent
# backend library → the modules allowed to import it: its export target module and its
# runtime adapter (relative to rtmw/)
BACKENDS: dict[str, tuple[str, ...]] = {
    # the QNN target is a Q/DQ ONNX that onnxruntime's QNN execution provider runs
    "onnxruntime": (
        "export/targets/onnxruntime.py",
        "runtimes/onnxrt.py",
        "export/targets/qnn.py",
        "runtimes/qnn.py",
    ),
    "onnxruntime_qnn": ("export/targets/qnn.py", "runtimes/qnn.py"),
    "MNN": ("export/targets/mnn.py", "runtimes/mnn.py"),
    "_tools": ("export/targets/mnn.py",),
    # rknn-toolkit2 runs in its own environment, driven through the worker script;
    # rknn-toolkit-lite2 on a board
    "rknn": ("runtimes/rknn_worker.py",),
    "rknnlite": ("runtimes/rknn.py",),
    "openvino": ("export/targets/openvino.py", "runtimes/openvino.py"),
    "nncf": ("export/targets/openvino.py",),
    "ncnn": ("export/targets/ncnn/", "runtimes/ncnn.py"),
    "pnnx": ("export/targets/ncnn/",),
    "tensorrt": ("export/targets/tensorrt.py", "runtimes/tensorrt.py"),
    "litert_torch": ("export/targets/litert.py",),
    "ai_edge_quantizer": ("export/targets/litert.py",),
    "ai_edge_litert": ("export/targets/litert.py", "runtimes/litert.py"),
    "executorch": ("export/targets/executorch.py", "runtimes/executorch.py"),
    # PT2E quantisation, shared by the two torch.export-based INT8 targets
    "torchao": ("export/pt2e.py",),
}


def _imported(tree: ast.AST) -> set[str]:
    """Top-level names of every module imported, statically or through import_backend()."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "import_backend"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def test_backends_only_in_their_target_module_and_runtime_adapter() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for backend in _imported(ast.parse(path.read_text())) & set(BACKENDS):
            if not any(rel.startswith(allowed) for allowed in BACKENDS[backend]):
                offenders.append(f"{rel} imports {backend}")
    assert offenders == []


def test_export_api_has_no_backend_branches() -> None:
    """api.py decides nothing by a target's format or name: those are the spec's hooks.
    No comparison with a format or backend name, no identifier naming a backend."""
    tree = ast.parse((ROOT / "export" / "api.py").read_text())
    words = ("tensorrt", "trt", "openvino", "ncnn", "onnxruntime", "ort", "torch-", "litert",
             "executorch")  # fmt: skip
    compared = [
        node.value
        for comp in ast.walk(tree)
        if isinstance(comp, ast.Compare)
        for node in ast.walk(comp)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    identifiers = [
        getattr(node, "id", getattr(node, "attr", ""))
        for node in ast.walk(tree)
        if isinstance(node, (ast.Name, ast.Attribute))
    ]
    assert not [c for c in compared if any(w in c.lower() for w in words)], compared
    assert not [i for i in identifiers if i.lower().split("_")[0] in words], identifiers


def test_every_builtin_backend_module_registers_targets() -> None:
    from rtmw.export import TARGETS
    from rtmw.export.targets import BUILTIN_BACKENDS

    registered_by = {spec.build.__module__ for spec in TARGETS.values()}
    assert {module.__name__ for module in BUILTIN_BACKENDS} <= registered_by


def test_file_schemas_match_their_writers() -> None:
    """Each versioned format's keys are exactly what its writer writes."""
    import dataclasses

    from rtmw.artifact import Manifest
    from rtmw.schemas import ARTIFACT, GATES, RESULTS

    fields = {f.name for f in dataclasses.fields(Manifest)}
    assert fields | {"manifest_sha256"} == ARTIFACT.keys
    assert ARTIFACT.tag == Manifest.schema == "rtmw.artifact/1"
    assert RESULTS.tag == "rtmw.bench/1" and GATES.problems({"defaults": {}}).wrong_tag is False
    assert GATES.problems({"schema": "rtmw.gates/2", "defaults": {}}).wrong_tag
    try:
        RESULTS.stamp({"environment": {}, "settings": {}, "entries": [], "extra": 1})
    except ValueError as exc:
        assert "extra" in str(exc)
    else:
        raise AssertionError("a key the format lacks must be refused by the writer")


# -- each backend described once (issue 34) ---------------------------------------------
def _pyproject_extras() -> set[str]:
    import tomllib

    data = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    return set(data["project"]["optional-dependencies"])


def test_every_runtime_adapter_declares_itself_and_every_table_derives_from_it() -> None:
    """A backend lacking a declaration, or a table that misses one, fails here."""
    from rtmw import runtimes
    from rtmw.bench.environment import BACKEND_PACKAGES, PROFILES, RUNTIME_DEVICE
    from rtmw.cli.bench import DEVICE_CHOICES
    from rtmw.export import get_target, list_targets
    from rtmw.runtimes.base import DECLARATIONS
    from rtmw.workflows.baseline import CPU_FORMATS

    extras = _pyproject_extras()
    assert runtimes.REGISTRY, "no runtime adapter registered"
    for fmt, cls in runtimes.REGISTRY.items():
        for attr in DECLARATIONS:  # extra may be "" (the base install), never absent
            assert hasattr(cls, attr), f"{cls.__name__} lacks {attr}"
            assert attr == "extra" or getattr(cls, attr), f"{cls.__name__}: empty {attr}"
        assert cls.format == fmt
        assert cls.extra == "" or cls.extra in extras, f"{cls.__name__}: no extra {cls.extra!r}"
        assert set(cls.packages) <= set(BACKEND_PACKAGES)
        assert set(cls.devices) <= set(RUNTIME_DEVICE) and set(cls.devices) <= set(PROFILES)
        assert set(cls.devices) <= set(DEVICE_CHOICES)
        assert (fmt in CPU_FORMATS) == ("cpu" in cls.devices and not cls.reference)
    for target in [*list_targets(), "torch"]:
        spec = get_target(target)
        assert spec.format in runtimes.REGISTRY, f"{target}: no runtime for {spec.format}"
        assert spec.extra == "" or spec.extra in extras, f"{target}: no extra {spec.extra!r}"


def test_a_throwaway_backend_is_one_class_away_from_every_table() -> None:
    """What adding a backend costs: its runtime adapter (one declared class) reaches the
    runtime registry, the remote install's extras, the recorded packages, the devices and
    the CPU formats without another edit; its target module is the other place."""
    from typing import Any, ClassVar

    from rtmw import runtimes
    from rtmw.runtimes.base import REGISTRY, Runtime, register_runtime

    class ThrowawayRunner(Runtime):
        name = "throwaway"
        format = "throwaway"
        extra = "throwaway-extra"
        packages: ClassVar[tuple[str, ...]] = ("throwaway-runtime",)
        devices: ClassVar[tuple[str, ...]] = ("cpu", "throwaway-npu")

        def _activate_impl(self) -> str:
            return "cpu"

        def _infer_impl(self, batch: Any) -> Any:
            return ()

    from conftest import _backend_marker

    from rtmw.export import get_target, list_targets
    from rtmw.export.registry import TARGETS, register_target

    try:
        # place 1: the target module (one registered function)
        @register_target("throwaway-fp32", format="throwaway", precision="fp32",
                         extra="throwaway-extra")  # fmt: skip
        def _throwaway_target(ctx: Any) -> Any:
            raise NotImplementedError

        # place 2: the runtime module (one declared class)
        register_runtime(ThrowawayRunner)
        assert "throwaway-fp32" in list_targets()
        assert get_target("throwaway-fp32").format in runtimes.REGISTRY
        assert runtimes.runtime_class("throwaway") is ThrowawayRunner
        assert runtimes.extras_by_format()["throwaway"] == "throwaway-extra"
        assert "throwaway-runtime" in runtimes.recorded_packages()
        assert "throwaway-npu" in runtimes.devices()
        assert "throwaway" in runtimes.deployment_formats("cpu")
        assert _backend_marker("throwaway-fp32") == "throwaway"  # the tests' marker
    finally:
        REGISTRY.pop("throwaway", None)
        TARGETS.pop("throwaway-fp32", None)

    class Undeclared(Runtime):
        name = "undeclared"

    import pytest

    with pytest.raises(TypeError, match="does not declare format, extra, packages"):
        register_runtime(Undeclared)
    assert "undeclared" not in REGISTRY


def test_architecture_doc_names_the_four_places_a_backend_adds() -> None:
    """docs/architecture.md's list is what the two tests above hold the code to."""
    import re

    doc = (ROOT.parent / "docs" / "architecture.md").read_text()
    section = doc.split("## What a new backend adds", 1)[1].split("\n## ", 1)[0]
    places = re.findall(r"^(\d+)\. \*\*(.+?)\*\*", section, flags=re.MULTILINE)
    assert [int(n) for n, _ in places] == [1, 2, 3, 4], places
    for needle in ("rtmw/export/targets/<backend>.py", "rtmw/runtimes/<backend>.py",
                   "pyproject.toml", "tests/test_layout.py"):  # fmt: skip
        assert needle in section, needle


def test_one_error_table_and_no_literal_exit_codes() -> None:
    """Every error type lives in rtmw.errors (with its exit code); commands exit through
    rtmw.errors.ExitCode, never a bare number."""
    from rtmw import errors

    error_names = {name for name, value in vars(errors).items()
                   if isinstance(value, type) and issubclass(value, Exception)}  # fmt: skip
    outside = []
    literal_exits = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and rel != "errors.py":
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & (error_names | {"Exception", "RuntimeError", "ValueError"}):
                    outside.append(f"{rel}: {node.name}")
            if isinstance(node, ast.Call) and rel.startswith("cli/"):
                func = node.func
                name = getattr(func, "attr", getattr(func, "id", ""))
                literal = bool(node.args) and isinstance(node.args[0], ast.Constant)
                if name in ("exit", "SystemExit") and literal:
                    literal_exits.append(f"{rel}:{node.lineno}")
    assert outside == [], outside
    assert literal_exits == [], literal_exits
    for cls in (errors.GateConfigError, errors.CalibrationRequired):
        assert cls.exit_code == errors.ExitCode.USAGE and issubclass(cls, errors.UsageError)
    assert issubclass(errors.DeviceNotPresent, errors.DeviceUnavailable)
    assert errors.DeviceNotPresent.exit_code == errors.ExitCode.UNAVAILABLE
