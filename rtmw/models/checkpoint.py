"""Reading and writing RTMW checkpoints in mmpose's saved format.

Loading never unpickles arbitrary objects: ``torch.load(weights_only=True)`` with an
allowlist of exactly the numpy types mmpose puts in ``meta`` and inert stand-ins for
mmengine's training-state records. The model is identified from tensor shapes (file
names of official checkpoints mislead) and loaded strictly.
"""

from __future__ import annotations

import datetime as _dt
import logging
import pickle
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from rtmw.errors import CheckpointError, NotRTMWError, StateDictMismatch
from rtmw.hashing import sha256_file
from rtmw.models.layers import randomize_batchnorm
from rtmw.models.rtmw import RTMW
from rtmw.models.zoo import ZOO, OfficialFile, RTMWConfig, get_config

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.", "student.", "model.")
PARTS_PREFIXES = ("backbone.", "neck.", "head.")
WHOLEBODY_KEYPOINTS = 133
ModelT = TypeVar("ModelT", bound=torch.nn.Module)
ConfigT = TypeVar("ConfigT", bound=Any)


class _InertRecord(dict[str, Any]):
    """Stand-in for mmengine training-state objects (e.g. ``HistoryBuffer``).

    Training checkpoints carry these in ``message_hub``; we need none of their
    behaviour, so their state is kept as plain data and no foreign code runs.
    """

    def __setstate__(self, state: Any) -> None:
        self["state"] = state


_INERT_GLOBALS = (
    "mmengine.logging.history_buffer.HistoryBuffer",
    "mmengine.config.config.ConfigDict",
)


def _numpy_safe_globals() -> list[Any]:
    """Exactly the numpy callables needed to rebuild arrays, dtypes and scalars.

    Files written under numpy 1.x name ``numpy.core.*``; numpy 2 writes
    ``numpy._core.*``: both spellings are allowed, mapped to the same objects.
    """
    # the callables numpy's own pickles name, taken from numpy rather than by path
    reconstruct = np.zeros(1).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed: list[Any] = [np.ndarray, np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((reconstruct, f"{module}._reconstruct"))
        allowed.append((scalar, f"{module}.scalar"))
    allowed.extend(getattr(np.dtypes, name) for name in np.dtypes.__all__ if name.endswith("DType"))
    return allowed


def _safe_globals() -> list[Any]:
    # torch.torch_version.TorchVersion: a str subclass some checkpoints carry in meta
    from torch.torch_version import TorchVersion

    inert = [(_InertRecord, name) for name in _INERT_GLOBALS]
    return [*_numpy_safe_globals(), *inert, TorchVersion]


TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def sniff_format(path: Path) -> str | None:
    """What a file that is not a torch.save checkpoint is, from its first bytes; None when
    it looks like one (zip with data.pkl, or torch's legacy format)."""
    import zipfile

    with path.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # a torch.save file cut short: torch.load's error says truncated
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return None
        return f"a zip archive of something else ({', '.join(names[:3]) or 'empty'})"
    if head.startswith(TORCH_LEGACY_MAGIC):
        return None
    if len(head) >= 10 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 30:
        return "a safetensors file (rtmw reads mmpose .pth checkpoints: torch.save of a dict)"
    if head[:1] == b"\x08" and (b"pytorch" in head[:256] or b"onnx" in head[:256].lower()):
        return "an ONNX model, not a checkpoint (export from the .pth it was made from)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (
            "a plain Python pickle, not a torch.save checkpoint; rtmw does not unpickle "
            "arbitrary pickles (they can run code)"
        )
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON/text file, not a checkpoint"
    return None


@dataclass
class CheckpointContents:
    """What a checkpoint holds once unwrapped: tensors, metadata and provenance."""

    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    stripped_prefix: str | None = None


def _first(items: Iterable[str], n: int = 5) -> str:
    listed = list(items)
    head = ", ".join(listed[:n])
    return head + (f", … ({len(listed)} in all)" if len(listed) > n else "")


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        match = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global ([\w.]+)", text)
        if match:
            raise CheckpointError(
                f"{path}: refusing to load: the file needs to unpickle {match.group(1)}, which "
                "could run arbitrary code; rtmw loads tensors and plain metadata only "
                "(torch.load weights_only=True)"
            ) from None
        raise CheckpointError(
            f"cannot read checkpoint {path}: corrupt pickle data ({text.splitlines()[0][:120]})"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(
            f"cannot read checkpoint {path}: truncated, corrupt or not a PyTorch file ({reason})"
        ) from None


def _strip_wrappers(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str | None]:
    """Remove DataParallel/distillation wrappers; distillation files keep the student."""
    if any(k.startswith(PARTS_PREFIXES) for k in state):
        return state, None
    for prefix in WRAPPER_PREFIXES:
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if any(k.startswith(PARTS_PREFIXES) for k in picked):
            return picked, prefix
    return state, None


def read_checkpoint(path: str | Path) -> CheckpointContents:
    """Read a checkpoint file into tensors + meta, without building any model."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty")
    kind = sniff_format(path)
    if kind is not None:
        raise CheckpointError(f"cannot read checkpoint {path}: it is {kind}")
    obj = _torch_load(path)
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping) and "state_dict" in obj:
        state = obj["state_dict"]
        raw_meta = obj.get("meta")
        meta = dict(raw_meta) if isinstance(raw_meta, Mapping) else {}
    elif isinstance(obj, Mapping):
        state = obj
    else:
        raise CheckpointError(
            f"{path}: holds a {type(obj).__name__}, not a state dict or mmpose checkpoint"
        )
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path}: the state dict is empty or not a mapping")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors (keys: {_first(map(str, state))})")
    tensors, prefix = _strip_wrappers(tensors)
    return CheckpointContents(path, sha256_file(path), tensors, meta, prefix)


def expected_layout(config: RTMWConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key and shape of a configuration, built on the meta device."""
    with torch.device("meta"):
        model = RTMW(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _count_blocks(state: Mapping[str, torch.Tensor], stage: int) -> int:
    pattern = re.compile(rf"^backbone\.stage{stage}\.\d+\.blocks\.(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return len(found)


def _reject_other_families(state: Mapping[str, torch.Tensor], source: str) -> None:
    keys = list(state)
    if any(k.startswith("bbox_head.") for k in keys):
        raise NotRTMWError(
            f"{source}: an mmdet detector checkpoint (bbox_head.* tensors), not a pose model: "
            "give it as the detector (rtmw.models.load_detector; rtmw-export detects it)"
        )
    has = {p: any(k.startswith(p) for k in keys) for p in PARTS_PREFIXES}
    if not has["backbone."] or not has["head."]:
        raise CheckpointError(
            f"{source}: not an mmpose top-down pose checkpoint (no backbone./head. tensors; "
            f"first keys: {_first(keys)})"
        )
    single_conv = state.get("head.final_layer.weight")
    if single_conv is not None and not has["neck."]:
        k = single_conv.shape[0]
        kind = (
            "an RTMPose/DWPose whole-body checkpoint (133 keypoints)"
            if k == WHOLEBODY_KEYPOINTS
            else f"an RTMPose-style checkpoint with {k} keypoints"
        )
        raise NotRTMWError(
            f"{source}: {kind}: no neck and a single head.final_layer conv; RTMW is required "
            "(CSPNeXtPAFPN neck + RTMWHead), e.g. one of: " + ", ".join(sorted(ZOO))
        )
    if not has["neck."] or "head.final_layer.conv.weight" not in state:
        raise CheckpointError(
            f"{source}: pose checkpoint of an unknown head/neck layout, not RTMW "
            f"(first head keys: {_first(k for k in keys if k.startswith('head.'))})"
        )


def _candidate_configs(state: Mapping[str, torch.Tensor], source: str) -> list[RTMWConfig]:
    """Zoo entries whose shapes could fit, then a custom config inferred from shapes."""
    stem = state.get("backbone.stem.2.conv.weight")
    cls_x = state.get("head.cls_x.weight")
    cls_y = state.get("head.cls_y.weight")
    final = state["head.final_layer.conv.weight"]
    if stem is None or cls_x is None or cls_y is None:
        raise StateDictMismatch(
            f"{source}: RTMW layout incomplete: missing "
            + _first(
                k
                for k in ("backbone.stem.2.conv.weight", "head.cls_x.weight", "head.cls_y.weight")
                if k not in state
            )
        )
    num_keypoints = int(final.shape[0])
    if num_keypoints != WHOLEBODY_KEYPOINTS:
        raise NotRTMWError(
            f"{source}: RTMW-shaped model with {num_keypoints} keypoints; rtmw handles the "
            f"{WHOLEBODY_KEYPOINTS} COCO-WholeBody keypoints"
        )
    blocks = tuple(_count_blocks(state, s) for s in range(1, 5))
    widen = int(stem.shape[0]) / 64
    ratio = 2.0
    input_size = (round(cls_x.shape[0] / ratio), round(cls_y.shape[0] / ratio))
    # RTMW3D: the z classifier's length gives the codec's depth size
    cls_z = state.get("head.cls_z.weight")
    depth_size = round(cls_z.shape[0] / ratio) if cls_z is not None else None
    fits = [
        c
        for c in ZOO.values()
        if c.stage_blocks == blocks
        and c.stem_channels == int(stem.shape[0])
        and c.input_size == input_size
        and c.depth_size == depth_size
    ]
    if fits:
        return fits
    known_deepen = sorted({c.deepen_factor for c in ZOO.values()})
    deepen = next(
        (d for d in known_deepen if RTMWConfig("probe", 1.0, d, (32, 32)).stage_blocks == blocks),
        blocks[1] / 6,
    )
    family = "rtmw3d" if depth_size is not None else "rtmw"
    custom = RTMWConfig(
        name=f"{family}-custom-w{widen:g}-d{deepen:g}-{input_size[1]}x{input_size[0]}",
        widen_factor=widen,
        deepen_factor=deepen,
        input_size=input_size,
        depth_size=depth_size,
        description="inferred from tensor shapes; not a published configuration",
    )
    return [custom]


def _mismatch_report(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]
) -> str:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)}≠{expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {_first(missing, 3)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)}: {_first(unexpected, 3)}")
    if wrong:
        parts.append(f"shape mismatch {len(wrong)}: {_first(wrong, 3)}")
    return "; ".join(parts)


def identify(state: Mapping[str, torch.Tensor], source: str = "state dict") -> RTMWConfig:
    """Name the RTMW configuration a state dict belongs to, from tensor shapes alone."""
    _reject_other_families(state, source)
    candidates = _candidate_configs(state, source)
    reports = []
    for config in candidates:
        report = _mismatch_report(state, expected_layout(config))
        if not report:
            return config
        reports.append(f"{config.name}: {report}")
    raise StateDictMismatch(f"{source}: tensors do not match RTMW exactly ({reports[0]})")


def _check_official_pin(contents: CheckpointContents, configs: Iterable[Any] | None = None) -> None:
    """A file carrying an official name must carry the official bytes (``configs``: the
    registry to look in, RTMW's zoo unless told)."""
    for config in ZOO.values() if configs is None else configs:
        official = config.official
        if official is None or contents.path.name != official.file_name:
            continue
        if official.sha256 and contents.sha256 != official.sha256:
            raise CheckpointError(
                f"{contents.path}: named like the official {config.name} file but its sha256 "
                f"{contents.sha256[:16]}… differs from the pinned {official.sha256[:16]}…"
            )
        if official.sha256_prefix and not contents.sha256.startswith(official.sha256_prefix):
            raise CheckpointError(
                f"{contents.path}: named like the official {config.name} file but its sha256 "
                f"starts {contents.sha256[:8]}, not {official.sha256_prefix} (corrupt or "
                "substituted download)"
            )


def model_from_contents(
    contents: CheckpointContents, *, expect: str | None = None
) -> tuple[RTMW, RTMWConfig]:
    """Identify, build and strictly load the model held by already-read contents."""
    _check_official_pin(contents)
    config = identify(contents.state_dict, source=str(contents.path))
    if expect is not None and config.name != get_config(expect).name:
        raise StateDictMismatch(
            f"{contents.path}: expected {expect}, but the tensors are {config.name}"
        )
    return load_strictly(RTMW(config), config, contents)


def load_strictly(
    model: ModelT, config: ConfigT, contents: CheckpointContents
) -> tuple[ModelT, ConfigT]:
    """Every tensor into ``model`` (strict), eval mode, logged; the configuration gains the
    file's sha256. The last step of loading any family."""
    model.load_state_dict(contents.state_dict, strict=True)
    model.eval()
    if contents.stripped_prefix:
        logger.info("stripped wrapper prefix %r from %s", contents.stripped_prefix, contents.path)
    logger.info("loaded %s as %s (sha256 %s…)", contents.path, config.name, contents.sha256[:12])
    return model, replace(config, extra={**config.extra, "sha256": contents.sha256})


def lift_to_3d(contents: CheckpointContents, target: RTMWConfig) -> tuple[RTMW, RTMWConfig]:
    """An RTMW3D model whose every tensor but the new z classifier comes from a 2D RTMW
    checkpoint of the same architecture (RTMW3D is trained from RTMW/RTMPose weights);
    head.cls_z starts as mmpose's head init, N(0, 0.01)."""
    if not target.is_3d:
        raise StateDictMismatch(f"{target.name} is not an RTMW3D configuration")
    _reject_other_families(contents.state_dict, str(contents.path))
    if "head.cls_z.weight" in contents.state_dict:
        raise StateDictMismatch(f"{contents.path}: already an RTMW3D checkpoint; load it as one")
    model = RTMW(target)
    expected = {k: v for k, v in expected_layout(target).items() if k != "head.cls_z.weight"}
    report = _mismatch_report(contents.state_dict, expected)
    if report:
        raise StateDictMismatch(f"{contents.path}: cannot start {target.name} from it ({report})")
    missing, unexpected = model.load_state_dict(contents.state_dict, strict=False)
    assert missing == ["head.cls_z.weight"] and not unexpected, (missing, unexpected)
    assert model.head.cls_z is not None
    torch.nn.init.normal_(model.head.cls_z.weight, std=0.01)
    logger.info("started %s from the 2D checkpoint %s", target.name, contents.path)
    return model.eval(), replace(target, extra={**target.extra, "init_sha256": contents.sha256})


def load_checkpoint(path: str | Path, *, expect: str | None = None) -> tuple[RTMW, RTMWConfig]:
    """Load an mmpose-format RTMW checkpoint: (model in eval mode, its configuration).

    ``expect`` names a zoo configuration the file must be; without it the
    configuration is identified from tensor shapes.
    """
    return model_from_contents(read_checkpoint(path), expect=expect)


def build(name: str, *, seed: int | None = None) -> RTMW:
    """A randomly initialised model of a zoo configuration, in eval mode.

    BatchNorm statistics are randomised too (not left at 0/1), so that random-init
    checkpoints exercise the same arithmetic as trained ones.
    """
    config = get_config(name)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if seed is not None:
        torch.manual_seed(seed)
    model = RTMW(config)
    randomize_batchnorm(model, generator)
    return model.eval()


def wholebody_dataset_meta() -> dict[str, Any]:
    """``dataset_meta`` as mmpose stores it: plain types plus numpy arrays."""
    from rtmw import keypoints as wholebody

    return {
        "dataset_name": "coco_wholebody",
        "num_keypoints": WHOLEBODY_KEYPOINTS,
        "keypoint_id2name": dict(enumerate(wholebody.KEYPOINT_NAMES)),
        "keypoint_name2id": {n: i for i, n in enumerate(wholebody.KEYPOINT_NAMES)},
        "flip_indices": list(wholebody.FLIP_INDICES),
        "flip_pairs": [list(p) for p in wholebody.FLIP_PAIRS],
        "sigmas": np.asarray(wholebody.SIGMAS, dtype=np.float32),
        "joint_weights": np.ones(WHOLEBODY_KEYPOINTS, dtype=np.float32),
        "skeleton_links": [list(link) for link in wholebody.SKELETON],
        "num_skeleton_links": len(wholebody.SKELETON),
        "keypoint_colors": np.zeros((WHOLEBODY_KEYPOINTS, 3), dtype=np.uint8),
    }


def save_checkpoint(
    model: RTMW, path: str | Path, *, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``{"meta", "state_dict"}`` exactly as mmpose's runner saves it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full_meta: dict[str, Any] = {
        "mmengine_version": "0.10.3",
        "time": _dt.datetime.now(tz=_dt.timezone.utc).strftime("%Y%m%d_%H%M%S"),
        "epoch": 0,
        "iter": 0,
        "seed": 21,
        "experiment_name": f"rtmw_{model.config.name}",
        "dataset_meta": wholebody_dataset_meta(),
        "rtmw_config": model.config.name,
    }
    full_meta.update(meta or {})
    state_dict = OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items())
    tmp = path.with_name(path.name + ".partial")
    torch.save({"meta": full_meta, "state_dict": state_dict}, tmp)
    tmp.replace(path)
    return path


def demo_checkpoint(name: str | None = None) -> Path:
    """The embedded demo model's weights (mmpose format), shipped inside the package;
    ``name`` picks another packaged model (the small demo the test suite exports).

    Loading goes through the official-name pin, so a modified file is refused.
    """
    from rtmw.models.zoo import DEMO_NAME, get_config

    config = get_config(name or DEMO_NAME)
    return packaged_weights(config.name, config.official)


def packaged_weights(name: str, official: OfficialFile | None) -> Path:
    """The file of a zoo entry whose weights ship inside the package (``package:`` URL)."""
    if official is None or not official.url.startswith("package:"):
        raise CheckpointError(f"no packaged weights are registered for {name}")
    path = Path(__file__).with_name("weights") / official.file_name
    if not path.is_file():
        raise CheckpointError(f"the weights of {name} are missing from this installation: {path}")
    return path
