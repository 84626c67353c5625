from rtmw.models.checkpoint import demo_checkpoint
from rtmw.export import export
from rtmw.calib import load_calibration_set
calib = load_calibration_set("/work/runs/rknn/calib.npz")
out = "/work/runs/newtargets/artifacts"
for r in export(demo_checkpoint(), ["onnx", "mnn-fp32", "mnn-fp16", "qnn-w8a16", "rknn-fp16", "rknn-int8"], out, calib=calib, overwrite=True):
    print(r.target, r.status, r.reason)
