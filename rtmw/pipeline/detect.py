"""The person detector's pre- and post-processing (numpy): the only box decode in rtmw.

Pre-processing is mmdet's RTMDet test pipeline: ``Resize(scale=(S, S), keep_ratio=True)``
(mmcv.imrescale: factor min(S/long side, S/short side), new size int(x·f + 0.5), bilinear),
``Pad(size=(S, S), pad_val=114)`` at the bottom and right, then DetDataPreprocessor's
(x − mean) / std in BGR order (``bgr_to_rgb=False``). The bilinear resize is OpenCV's
fixed-point INTER_LINEAR for 8-bit images rebuilt in numpy (11-bit coefficients, the
rounding of its SIMD path), so every platform gets the same pixels whatever its OpenCV.

Decoding is mmdet's ``RTMDetHead.predict_by_feat`` with ``rescale=True`` and the RTMDet
test_cfg: per level, sigmoid scores above ``score_thr`` (0.001), the ``nms_pre`` (30000)
best (prior, class) pairs; boxes = prior ± distances clipped to the network input (mmcv's
Pad sets img_shape to the padded size); scaled back by the resize factors (not clipped to
the frame, as mmdet); boxes with zero width or height dropped (min_bbox_size 0);
class-aware NMS at IoU 0.65 (mmcv's nms: IoU > threshold suppresses, areas without +1);
the ``max_per_img`` (300) best over all classes; then the person class is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rtmw.errors import InputError
from rtmw.outputs import ModelOutputs

RESIZE_COEF_BITS = 11
RESIZE_COEF_SCALE = 1 << RESIZE_COEF_BITS


DETECTOR_LAYOUTS = {
    "rtmdet": "RTMDet raw heads: cls_score_s8/16/32 (N,C,H/s,W/s) logits, bbox_pred_s8/16/32 "
    "(N,4,H/s,W/s) distances in input pixels",
    "mmdeploy-end2end": "dets (N,K,5) x1,y1,x2,y2,score in input pixels and labels (N,K), NMS "
    "inside the graph (mmdeploy's end2end.onnx, rtmlib's detectors)",
    "yolox-raw": "one (N,A,5+C) output: cx,cy grid offsets, log w,h, objectness and class "
    "probabilities per prior of strides 8/16/32 (YOLOX's export without decode)",
}


@dataclass(frozen=True)
class DetectorSpec:
    """What the decode needs to know of a detector (artifact.json's ``detector`` record)."""

    input_size: tuple[int, int]  # (width, height)
    num_classes: int
    person_class: int
    strides: tuple[int, ...] = (8, 16, 32)
    mean_bgr: tuple[float, float, float] = (103.53, 116.28, 123.675)
    std_bgr: tuple[float, float, float] = (57.375, 57.12, 58.395)
    pad_value: float = 114.0  # a byte value, as mmdet's Pad writes it into the uint8 image
    # what the model's outputs are (DETECTOR_LAYOUTS): RTMDet's raw heads (rtmw's exports),
    # mmdeploy's end2end dets/labels (NMS inside), or YOLOX's raw grid predictions
    layout: str = "rtmdet"
    # the resized size: mmcv's int(x·f + 0.5) ("half-up") or YOLOX's int(x·f) ("floor")
    rounding: str = "half-up"

    @classmethod
    def from_record(cls, record: Mapping[str, object], input_size: Sequence[int]) -> DetectorSpec:
        def floats(key: str, default: tuple[float, float, float]) -> tuple[float, float, float]:
            value = record.get(key)
            if not isinstance(value, (list, tuple)) or len(value) != 3:
                return default
            return (float(value[0]), float(value[1]), float(value[2]))

        raw = record.get("strides", (8, 16, 32))
        strides = tuple(int(s) for s in raw) if isinstance(raw, (list, tuple)) else (8, 16, 32)
        return cls(
            input_size=(int(input_size[0]), int(input_size[1])),
            num_classes=int(str(record["num_classes"])),
            person_class=int(str(record.get("person_class", 0))),
            strides=strides,
            mean_bgr=floats("mean_bgr", cls.mean_bgr),
            std_bgr=floats("std_bgr", cls.std_bgr),
            pad_value=float(str(record.get("pad_value", 114.0))),
            layout=str(record.get("layout", "rtmdet")),
            rounding=str(record.get("rounding", "half-up")),
        )  # fmt: skip

    def __post_init__(self) -> None:
        if self.layout not in DETECTOR_LAYOUTS:
            raise InputError(
                f"unknown detector layout {self.layout!r}; known: {', '.join(DETECTOR_LAYOUTS)}"
            )
        if self.rounding not in ("half-up", "floor"):
            raise InputError(f"unknown letterbox rounding {self.rounding!r}")


@dataclass(frozen=True)
class DecodeSettings:
    """mmdet's RTMDet test_cfg (rtmdet_*_8xb32-300e_coco.py), the defaults here."""

    score_thr: float = 0.001
    nms_pre: int = 30000
    iou_thr: float = 0.65
    max_per_img: int = 300
    min_bbox_size: float = 0.0


MMDET_DECODE = DecodeSettings()


@dataclass(frozen=True)
class Letterbox:
    """Where a frame went in the network input: resize factors (x, y) and resized size."""

    scale_x: float
    scale_y: float
    resized: tuple[int, int]  # (width, height) before padding
    original: tuple[int, int]  # (width, height) of the frame


@dataclass
class Detections:
    """Boxes (N,4) xyxy in frame pixels, scores (N,), class labels (N,), best first."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])


def _check_frame(image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError(f"frame must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"frame must be uint8 BGR (as cv2.imread gives), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise InputError(f"frame must be (H, W, 3) BGR, got shape {image.shape}")
    return image


def rescale_size(width: int, height: int, target: tuple[int, int]) -> tuple[int, int, float]:
    """mmcv.rescale_size with a (w, h) scale: the factor and the new (width, height)."""
    long_edge, short_edge = max(target), min(target)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(width * factor + 0.5), int(height * factor + 0.5), factor


def _linear_taps(
    src: int, dst: int, *, clamp: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR source index and 11-bit weights per output position.

    Columns past the border are clamped with their weight (``clamp``); rows are not: their
    weights stay as computed and only the row fetched is clamped, as resizeGeneric_ does.
    """
    scale = 1.0 / (dst / src)  # OpenCV inverts the inverse scale, in double
    position = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    index = np.floor(position).astype(np.int64)
    frac = (position - index).astype(np.float32)
    if clamp:
        low = index < 0
        frac[low], index[low] = 0.0, 0
        high = index >= src - 1
        frac[high], index[high] = 0.0, src - 1
    # each weight rounded on its own (saturate_cast<short>): they may sum to 2047 or 2049
    w0 = np.rint((np.float32(1.0) - frac) * np.float32(RESIZE_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(frac * np.float32(RESIZE_COEF_SCALE)).astype(np.int64)
    return index, w0, w1


def resize_linear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR) for uint8 images,
    in numpy: the horizontal pass in 32-bit integers, the vertical pass as OpenCV's SIMD
    path rounds it (operands shifted right by 4, high halves of 16-bit products, +2 >> 2)."""
    src_h, src_w = image.shape[:2]
    if (src_w, src_h) == (width, height):
        return image.copy()
    xi, xw0, xw1 = _linear_taps(src_w, width)
    yi, yw0, yw1 = _linear_taps(src_h, height, clamp=False)
    # only the source rows some output row reads are resampled horizontally
    above, below = np.clip(yi, 0, src_h - 1), np.clip(yi + 1, 0, src_h - 1)
    used, inverse = np.unique(np.concatenate([above, below]), return_inverse=True)
    pixels = image[used].astype(np.int32)
    right = np.minimum(xi + 1, src_w - 1)
    # 255 · 2049 · 2 < 2³¹: the horizontal sums fit int32; >> 4 brings them into int16
    rows = (pixels[:, xi] * xw0[None, :, None].astype(np.int32)
            + pixels[:, right] * xw1[None, :, None].astype(np.int32)) >> 4  # fmt: skip
    np.clip(rows, -32768, 32767, out=rows)
    top = rows[inverse[:height]]
    bottom = rows[inverse[height:]]
    mixed = (top * yw0[:, None, None].astype(np.int32)) >> 16
    mixed += (bottom * yw1[:, None, None].astype(np.int32)) >> 16
    mixed += 2
    mixed >>= 2
    out: np.ndarray = np.clip(mixed, 0, 255).astype(np.uint8)
    return out


_OPENCV_AGREES: bool | None = None


def opencv_resize_agrees() -> bool:
    """Whether this OpenCV's INTER_LINEAR gives :func:`resize_linear`'s pixels exactly, on
    probes that cover down- and up-scaling, odd sizes and SIMD tails (checked once)."""
    global _OPENCV_AGREES
    if _OPENCV_AGREES is None:
        import cv2

        rng = np.random.default_rng(20221207)
        agrees = True
        for (h, w), (nw, nh) in (((480, 640), (640, 480)), ((1080, 1920), (640, 360)),
                                 ((301, 397), (640, 485)), ((37, 1301), (640, 18)),
                                 ((700, 33), (31, 640)), ((5, 7), (11, 13))):  # fmt: skip
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            theirs = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            agrees = agrees and bool(np.array_equal(resize_linear(image, nw, nh), theirs))
        _OPENCV_AGREES = agrees
    return _OPENCV_AGREES


def resize_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The letterbox's resize: OpenCV's (about 8× faster) where it gives rtmw's pixels on
    the probes, else the numpy reference, so every platform feeds the model the same bytes."""
    if opencv_resize_agrees():
        import cv2

        resized: np.ndarray = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        return resized
    return resize_linear(image, width, height)


def letterbox(image: np.ndarray, spec: DetectorSpec) -> tuple[np.ndarray, Letterbox]:
    """One frame → the network input (1,3,H,W) float32 and where the frame went in it."""
    frame = _check_frame(image)
    height, width = frame.shape[:2]
    net_w, net_h = spec.input_size
    new_w, new_h, factor = rescale_size(width, height, (net_w, net_h))
    if spec.rounding == "floor":  # YOLOX's preproc: r = min(H/h, W/w), int(w·r), int(h·r)
        factor = min(net_w / width, net_h / height)
        new_w, new_h = max(1, int(width * factor)), max(1, int(height * factor))
    resized = resize_frame(frame, new_w, new_h)
    tensor = np.empty((1, 3, net_h, net_w), np.float32)
    # (v − mean) / std for every byte value, per channel, in float32 as mmdet computes it;
    # the padding (114) goes through the same table
    levels = np.arange(256, dtype=np.float32)[None, :]
    table = (levels - np.asarray(spec.mean_bgr, np.float32)[:, None]) / np.asarray(
        spec.std_bgr, np.float32
    )[:, None]
    pad = round(spec.pad_value)
    for channel in range(3):
        plane = tensor[0, channel]
        plane[...] = table[channel, pad]
        plane[:new_h, :new_w] = table[channel][resized[..., channel]]
    if spec.rounding == "floor":  # YOLOX divides boxes by its one ratio
        return tensor, Letterbox(factor, factor, (new_w, new_h), (width, height))
    return tensor, Letterbox(new_w / width, new_h / height, (new_w, new_h), (width, height))


def priors(size: tuple[int, int], stride: int) -> np.ndarray:
    """mmdet's MlvlPointGenerator (offset 0) for one level: (H·W, 2) x, y, row-major."""
    width, height = size
    xs = np.arange(width, dtype=np.float32) * stride
    ys = np.arange(height, dtype=np.float32) * stride
    grid_x, grid_y = np.meshgrid(xs, ys)
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_thr: float, max_keep: int | None = None
) -> np.ndarray:
    """Indices kept, best score first: a box whose IoU with a kept one exceeds ``iou_thr``
    is suppressed (mmcv's nms, offset 0: areas are (x2 − x1)·(y2 − y1)). ``max_keep`` stops
    after that many: whether a box is kept depends only on better-scored kept boxes, so the
    first ``max_keep`` are exactly those a full pass would keep first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        inter_w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        inter_h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = inter_w * inter_h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, np.finfo(np.float32).eps)
        order = rest[iou <= iou_thr]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    iou_thr: float,
    max_keep: int | None = None,
) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    offset = labels.astype(np.float32)[:, None] * (float(boxes.max()) + 1.0)
    return nms(boxes + offset, scores, iou_thr, max_keep)


def decode_detections(
    outputs: ModelOutputs,
    spec: DetectorSpec,
    boxes_in: Sequence[Letterbox],
    settings: DecodeSettings = MMDET_DECODE,
    *,
    person_only: bool = True,
) -> list[Detections]:
    """Head outputs of a batch of letterboxed frames → detections per frame (by layout)."""
    if spec.layout == "mmdeploy-end2end":
        return _decode_end2end(outputs, spec, boxes_in, settings, person_only)
    if spec.layout == "yolox-raw":
        return _decode_yolox(outputs, spec, boxes_in, settings, person_only)
    width, height = spec.input_size
    results = []
    for index, placed in enumerate(boxes_in):
        all_boxes, all_scores, all_labels = [], [], []
        for stride in spec.strides:
            cls = outputs[f"cls_score_s{stride}"][index]
            reg = outputs[f"bbox_pred_s{stride}"][index]
            level_h, level_w = cls.shape[1:]
            if (level_w * stride, level_h * stride) != (width, height) or cls.shape[
                0
            ] != spec.num_classes:
                raise InputError(
                    f"cls_score_s{stride} {cls.shape} does not fit a {width}x{height} input "
                    f"with {spec.num_classes} classes"
                )  # fmt: skip
            logits = cls.reshape(spec.num_classes, -1).T.astype(np.float32)
            scores = np.float32(1.0) / (np.float32(1.0) + np.exp(-logits))
            distances = reg.reshape(4, -1).T
            points = priors((level_w, level_h), stride)
            # filter_scores_and_topk: every (prior, class) pair above the threshold, the best
            # nms_pre of them (stable order: ties keep mmdet's row-major order)
            candidate = np.flatnonzero(scores.ravel() > settings.score_thr)
            chosen = candidate[np.argsort(-scores.ravel()[candidate], kind="stable")]
            chosen = chosen[: settings.nms_pre]
            prior_index, label = np.divmod(chosen, spec.num_classes)
            dist = distances[prior_index]
            pts = points[prior_index]
            box = np.stack([pts[:, 0] - dist[:, 0], pts[:, 1] - dist[:, 1],
                            pts[:, 0] + dist[:, 2], pts[:, 1] + dist[:, 3]], axis=1)  # fmt: skip
            # clipped to img_shape, which mmcv's Pad sets to the padded size (the network
            # input), not to the resized frame inside it
            box[:, 0::2] = np.clip(box[:, 0::2], 0, width)
            box[:, 1::2] = np.clip(box[:, 1::2], 0, height)
            all_boxes.append(box)
            all_scores.append(scores.ravel()[chosen])
            all_labels.append(label)
        results.append(_finish(np.concatenate(all_boxes), np.concatenate(all_scores),
                               np.concatenate(all_labels), placed, spec, settings, person_only,
                               run_nms=True))  # fmt: skip
    return results


def _finish(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, placed: Letterbox,
    spec: DetectorSpec, settings: DecodeSettings, person_only: bool, *, run_nms: bool,
) -> Detections:  # fmt: skip
    """Scale input-pixel boxes back to the frame, drop empty ones, NMS (unless the graph
    did it), keep ``max_per_img``, then the person class."""
    # mmdet's scale_boxes with 1 / scale_factor: a multiplication, no clipping after
    boxes = boxes.astype(np.float32) * np.asarray(
        [1 / placed.scale_x, 1 / placed.scale_y] * 2, np.float32
    )
    wide = (boxes[:, 2] - boxes[:, 0] > settings.min_bbox_size) & (
        boxes[:, 3] - boxes[:, 1] > settings.min_bbox_size
    )
    found = Detections(boxes[wide], scores[wide].astype(np.float32), labels[wide].astype(np.int64))
    if run_nms:
        keep = batched_nms(found.boxes, found.scores, found.labels, settings.iou_thr,
                           settings.max_per_img)  # fmt: skip
    else:
        keep = np.argsort(-found.scores, kind="stable")
    found = found.select(keep[: settings.max_per_img])
    return found.select(found.labels == spec.person_class) if person_only else found


def _decode_end2end(
    outputs: ModelOutputs, spec: DetectorSpec, boxes_in: Sequence[Letterbox],
    settings: DecodeSettings, person_only: bool,
) -> list[Detections]:  # fmt: skip
    """mmdeploy's end2end layout: NMS ran inside the graph; padding rows score 0."""
    dets, labels = outputs["dets"], outputs["labels"]
    if dets.ndim != 3 or dets.shape[-1] != 5 or labels.shape != dets.shape[:2]:
        raise InputError(f"dets {dets.shape} / labels {labels.shape}: expected (N,K,5) / (N,K)")
    results = []
    for index, placed in enumerate(boxes_in):
        frame = dets[index]
        kept = frame[:, 4] > settings.score_thr
        results.append(_finish(frame[kept, :4], frame[kept, 4], np.rint(labels[index][kept]),
                               placed, spec, settings, person_only, run_nms=False))  # fmt: skip
    return results


def yolox_grid(spec: DetectorSpec) -> tuple[np.ndarray, np.ndarray]:
    """YOLOX's priors: (A, 2) grid cells (x, y), row-major per stride, and (A,) strides."""
    width, height = spec.input_size
    cells = [priors((width // s, height // s), 1) for s in spec.strides]
    strides = [np.full(len(c), s, np.float32) for c, s in zip(cells, spec.strides, strict=True)]
    return np.concatenate(cells), np.concatenate(strides)


def _decode_yolox(
    outputs: ModelOutputs, spec: DetectorSpec, boxes_in: Sequence[Letterbox],
    settings: DecodeSettings, person_only: bool,
) -> list[Detections]:  # fmt: skip
    """YOLOX without its decode: xy = (offset + cell)·stride, wh = exp(log wh)·stride,
    score = objectness · class probability; then the shared NMS."""
    (raw,) = outputs.unpack()
    cells, strides = yolox_grid(spec)
    if raw.ndim != 3 or raw.shape[1] != len(cells) or raw.shape[2] != 5 + spec.num_classes:
        raise InputError(
            f"YOLOX output {raw.shape} does not fit a {spec.input_size[0]}x{spec.input_size[1]} "
            f"input with {spec.num_classes} classes: expected (N, {len(cells)}, "
            f"{5 + spec.num_classes})"
        )
    results = []
    for index, placed in enumerate(boxes_in):
        pred = raw[index].astype(np.float32)
        centre = (pred[:, :2] + cells) * strides[:, None]
        size = np.exp(np.minimum(pred[:, 2:4], 20.0)) * strides[:, None]
        scores = pred[:, 4:5] * pred[:, 5:]
        candidate = np.flatnonzero(scores.ravel() > settings.score_thr)
        chosen = candidate[np.argsort(-scores.ravel()[candidate], kind="stable")]
        chosen = chosen[: settings.nms_pre]
        prior, label = np.divmod(chosen, spec.num_classes)
        box = np.concatenate([centre[prior] - size[prior] / 2, centre[prior] + size[prior] / 2],
                             axis=1)  # fmt: skip
        results.append(_finish(box, scores.ravel()[chosen], label, placed, spec, settings,
                               person_only, run_nms=True))  # fmt: skip
    return results


def person_boxes(
    detections: Detections, *, score_thr: float = 0.3, iou_thr: float = 0.3
) -> np.ndarray:
    """What mmpose's top-down demos hand the pose model: person boxes scoring above
    ``bbox_thr`` (0.3) after a second NMS at ``nms_thr`` (0.3), as (N,4) xyxy."""
    confident = detections.select(detections.scores > score_thr)
    keep = nms(confident.boxes, confident.scores, iou_thr)
    kept: np.ndarray = confident.boxes[keep]
    return kept
