from rtmw.models.checkpoint import demo_checkpoint
from rtmw.export import export
from rtmw.calib import load_calibration_set
calib = load_calibration_set("/work/runs/rknn/calib.npz")
for pol in ("head-neck-fp32", "none"):
    for r in export(demo_checkpoint(), ["qnn-w8a16"], f"/work/runs/newtargets/qnn-{pol}", calib=calib, int8_policy=pol, overwrite=True):
        print(pol, r.target, r.status, r.reason)
