from pathlib import Path

from rtmw.calib import build_calibration_set, save_calibration_set
from rtmw.data.synthetic import make_dataset
from rtmw.workflows.demo import TRAIN_SEED, VAL_SEED

out = Path("/work/runs/qnn")
train = make_dataset(out / "data", 120, TRAIN_SEED, split="train")
val = make_dataset(out / "data", 200, VAL_SEED, split="val")
calib = build_calibration_set(
    train.image_dir, input_size=(192, 256), ann_file=train.ann_file, n=128, seed=0
)
save_calibration_set(calib, out / "calib.npz")
print(val.image_dir, val.ann_file)
