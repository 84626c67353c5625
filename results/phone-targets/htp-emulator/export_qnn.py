import time

from rtmw.calib import load_calibration_set
from rtmw.export import export
from rtmw.models import demo_checkpoint

calib = load_calibration_set("/work/runs/qnn/calib.npz")
t = time.time()
for r in export(demo_checkpoint(), ["onnx"], "/work/runs/qnn/onnx", overwrite=True):
    print(r.line())
for pol in ("head-neck-fp32", "none"):
    t = time.time()
    for r in export(
        demo_checkpoint(),
        ["qnn-w8a16"],
        f"/work/runs/qnn/qnn-{pol}",
        calib=calib,
        int8_policy=pol,
        overwrite=True,
    ):
        print(pol, r.line(), f"{time.time() - t:.0f}s")
