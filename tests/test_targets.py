"""The contract every registered target keeps: it exports, verifies and opens.

Parametrised over the registry itself, so a new target is tested by being registered.
The trained demo model is used (random weights cannot pass INT8 verification), with a
calibration set made by rtmw-calib's code from synthetic images. A target is skipped only
for a real reason: its packages are missing (named), or this host cannot run it (the
target's own ``unavailable`` hook, e.g. no native bf16).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import small_demo

from rtmw import runtimes
from rtmw.artifact import read_artifact
from rtmw.calib import CalibrationSet
from rtmw.export import (
    DEFAULT_TOLERANCES,
    ExportResult,
    export,
    get_target,
    list_targets,
    unavailable_reason,
)
from rtmw.export.api import _missing_modules
from rtmw.models import demo_checkpoint
from rtmw.schemas import Status

pytestmark = pytest.mark.precision

# Targets whose contract is checked on the product demo model: on Rockchip's NPU (all
# float16 arithmetic) the small suite model misses the FP16 tolerance (max rel 4.8e-2 >
# 3e-2, its peaks exact), a clean refusal tests/test_rknn.py asserts
ON_PRODUCT_DEMO = ("rknn-fp16",)


@pytest.fixture(scope="module")
def every_target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    calib_set: CalibrationSet,
) -> tuple[Path, dict[str, ExportResult]]:
    """Every registered target of the small demo model that this session's selection tests
    (all of them unless -k/-m narrowed it), in one export run (one ONNX step); its
    1/8-width neck needs float too under INT8 (head-neck-fp32, docs/gates.md)."""
    out = tmp_path_factory.mktemp("contract")
    contract = test_registered_target_exports_verifies_and_opens.__name__
    selected = {item.callspec.params["target"] for item in request.session.items
                if getattr(item, "originalname", "") == contract}  # fmt: skip
    wanted = [t for t in list_targets() if t in selected]
    small = [t for t in wanted if t not in ON_PRODUCT_DEMO]
    results = export(small_demo(), small, out, calib=calib_set,
                     int8_policy="head-neck-fp32")  # fmt: skip
    product = [t for t in wanted if t in ON_PRODUCT_DEMO]
    if product:
        results += export(demo_checkpoint(), product, out, calib=calib_set)
    return out, {r.target: r for r in results}


@pytest.mark.parametrize("target", list_targets())
def test_registered_target_exports_verifies_and_opens(every_target, target: str) -> None:
    spec = get_target(target)
    out, results = every_target
    result = results[target]
    missing = _missing_modules(spec)
    if missing:
        assert result.status == Status.SKIPPED and result.exit_code == 3
        pytest.skip(f"{', '.join(missing)} not installed (rtmw[{spec.extra}])")
    not_here = unavailable_reason(spec)
    if not_here is not None:
        assert result.status == Status.SKIPPED and result.exit_code == 4
        assert result.reason == not_here
        pytest.skip(not_here)
    fallback = spec.onnx_fallback.missing() if spec.onnx_fallback is not None else None
    expected = Status.OK if fallback is None else Status.ONNX_ONLY
    assert result.status == expected, result.reason
    assert result.path is not None and result.path.is_dir()
    manifest = read_artifact(result.path).manifest
    assert manifest.target == (target if fallback is None else target + "-onnx")
    assert manifest.precision == spec.precision
    assert manifest.format == (spec.format if fallback is None else "onnx")
    verification = manifest.verification
    assert verification["passed"] and verification["finite"], verification.get("failures")
    assert verification["max_rel_diff"] <= DEFAULT_TOLERANCES[spec.precision].max_rel_diff
    assert verification["device"] == (spec.verify_device if fallback is None else "cpu")
    if spec.precision == "int8":
        assert manifest.calibration is not None and "calib_holdout" in verification["inputs"]
        assert "random" not in verification["inputs"]
    device = verification["device"]
    with runtimes.open(result.path, device=device) as runner:
        width, height = manifest.input_size
        batch = np.zeros((2, 3, height, width), np.float32)
        simcc_x, simcc_y = runner(batch).unpack("simcc_x", "simcc_y")
    ratio = manifest.simcc_split_ratio
    assert simcc_x.shape == (2, 133, int(width * ratio))
    assert simcc_y.shape == (2, 133, int(height * ratio))
    assert np.isfinite(simcc_x).all() and np.isfinite(simcc_y).all()
    assert not list(out.glob(".*staging*"))
