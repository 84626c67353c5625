"""The architecture as tests: backends stay in their modules, api.py stays orchestration."""

from __future__ import annotations

import ast
from pathlib import Path

import rtmw

ROOT = Path(rtmw.__file__).parent
# backend library → the modules allowed to import it: its export target module and its
# runtime adapter (relative to rtmw/)
BACKENDS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("export/targets/onnxruntime.py", "runtimes/onnxrt.py"),
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
