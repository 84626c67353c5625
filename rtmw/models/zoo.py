"""The registry of RTMW configurations (timm-style: one named config per published model).

Published figures are mmpose's (COCO-WholeBody v1.0 val, detector boxes with human
AP 56.4, flip test). Official file names are recorded for provenance only: some
"-m" files are distilled students of other sizes, so a checkpoint is always
identified from its tensor shapes, never from its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rtmw.errors import RtmwError
from rtmw.outputs import POSE_OUTPUTS_2D, POSE_OUTPUTS_3D

# CSPNeXt arch P5: (in_channels, out_channels, num_blocks, add_identity, use_spp)
P5_STAGES: tuple[tuple[int, int, int, bool, bool], ...] = (
    (64, 128, 3, True, False),
    (128, 256, 6, True, False),
    (256, 512, 6, True, False),
    (512, 1024, 3, False, True),
)

PARTS = ("body", "foot", "face", "lefthand", "righthand", "wholebody")


@dataclass(frozen=True)
class PublishedAccuracy:
    """Per-part AP/AR as published (COCO-WholeBody v1.0 val, detector boxes)."""

    ap: dict[str, float]
    ar: dict[str, float]
    boxes: str = "detector (human AP 56.4)"


@dataclass(frozen=True)
class OfficialFile:
    url: str
    file_name: str
    # OpenMMLab's publish_model appends the first 8 hex digits of the file's sha256
    # to the name; the full digest is recorded once someone has verified the file.
    sha256_prefix: str | None = None
    sha256: str | None = None


class CSPNeXtP5:
    """The CSPNeXt-P5 backbone's geometry from a width and a depth factor, shared by every
    family built on it (RTMW, RTMDet): mmpose and mmdet scale the stages the same way."""

    widen_factor: float
    deepen_factor: float

    @property
    def stem_channels(self) -> int:
        return int(P5_STAGES[0][0] * self.widen_factor)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Output channels of stages 1–4."""
        return tuple(int(out * self.widen_factor) for _, out, *_ in P5_STAGES)

    @property
    def stage_blocks(self) -> tuple[int, ...]:
        # Python's round() (banker's rounding) as mmpose/mmdet use it: 3 × 0.67 → 2, 3 × 1.33 → 4.
        return tuple(max(round(n * self.deepen_factor), 1) for _, _, n, *_ in P5_STAGES)


@dataclass(frozen=True)
class RTMWConfig(CSPNeXtP5):
    """Everything needed to build one RTMW model and describe it."""

    name: str
    widen_factor: float
    deepen_factor: float
    input_size: tuple[int, int]  # (width, height), as mmpose writes it
    num_keypoints: int = 133
    simcc_split_ratio: float = 2.0
    gau_hidden_dims: int = 256
    gau_s: int = 128
    gau_expansion_factor: int = 2
    final_layer_kernel_size: int = 7
    neck_csp_blocks: int = 2
    expand_ratio: float = 0.5
    simcc_sigma: tuple[float, float] = (4.9, 5.66)
    # RTMW3D (mmpose projects/rtmpose3d): the codec's third input size, the depth the z
    # classifier spans (SimCC3DLabel input_size[2]); None for the 2D models
    depth_size: int | None = None
    z_range: float = 2.1744869  # SimCC3DLabel's default: z bins span ±z_range metres
    root_index: tuple[int, ...] = (11, 12)  # the hips: z is relative to their mean
    simcc_sigma_z: float = 6.0
    published: PublishedAccuracy | None = None
    official: OfficialFile | None = None
    published_gmacs: float | None = None
    num_parameters: int | None = None
    num_state_tensors: int | None = None
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    task: str = "pose"  # the model family's job (RTMDetConfig says "detect")

    @property
    def head_in_channels(self) -> int:
        return self.stage_channels[-1]

    @property
    def featuremap_size(self) -> tuple[int, int]:
        """(width, height) of the stride-32 map the head sees."""
        return (self.input_size[0] // 32, self.input_size[1] // 32)

    @property
    def simcc_size(self) -> tuple[int, int]:
        """(Wx, Wy): lengths of the simcc_x and simcc_y vectors."""
        return (
            int(self.input_size[0] * self.simcc_split_ratio),
            int(self.input_size[1] * self.simcc_split_ratio),
        )

    @property
    def is_3d(self) -> bool:
        return self.depth_size is not None

    @property
    def simcc_depth(self) -> int | None:
        """Length of the simcc_z vector (RTMW3D), None for 2D models."""
        if self.depth_size is None:
            return None
        return int(self.depth_size * self.simcc_split_ratio)

    @property
    def depth_record(self) -> dict[str, object] | None:
        """The depth codec (rtmw.pipeline.DepthCodec.from_dict reads it), None for 2D."""
        if self.depth_size is None:
            return None
        return {"depth_size": self.depth_size, "z_range": self.z_range,
                "root_index": list(self.root_index)}  # fmt: skip

    @property
    def output_names(self) -> tuple[str, ...]:
        return POSE_OUTPUTS_3D if self.is_3d else POSE_OUTPUTS_2D


def _acc(ap: tuple[float, ...], ar: tuple[float, ...]) -> PublishedAccuracy:
    """Published tables give hands as one figure: it is reported for both hands."""
    body, foot, face, hand, whole = ap
    body_r, foot_r, face_r, hand_r, whole_r = ar
    return PublishedAccuracy(
        ap=dict(zip(PARTS, (body, foot, face, hand, hand, whole), strict=True)),
        ar=dict(zip(PARTS, (body_r, foot_r, face_r, hand_r, hand_r, whole_r), strict=True)),
    )


_URL = "https://download.openmmlab.com/mmpose/v1/projects/rtmw/"

ZOO: dict[str, RTMWConfig] = {}


def register(config: RTMWConfig) -> RTMWConfig:
    if config.name in ZOO:
        raise ValueError(f"zoo name registered twice: {config.name}")
    ZOO[config.name] = config
    return config


register(
    RTMWConfig(
        name="rtmw-m-256x192",
        widen_factor=0.75,
        deepen_factor=0.67,
        input_size=(192, 256),
        published=_acc((0.676, 0.671, 0.783, 0.491, 0.582), (0.747, 0.794, 0.854, 0.604, 0.673)),
        official=OfficialFile(
            _URL + "rtmw-dw-l-m_simcc-cocktail14_270e-256x192-20231122.pth",
            "rtmw-dw-l-m_simcc-cocktail14_270e-256x192-20231122.pth",
        ),
        published_gmacs=4.3,
        num_parameters=32_258_207,
        num_state_tensors=620,
    )
)
register(
    RTMWConfig(
        name="rtmw-l-256x192",
        widen_factor=1.0,
        deepen_factor=1.0,
        input_size=(192, 256),
        published=_acc((0.743, 0.763, 0.834, 0.598, 0.660), (0.807, 0.868, 0.889, 0.701, 0.746)),
        official=OfficialFile(
            _URL + "rtmw-dw-x-l_simcc-cocktail14_270e-256x192-20231122.pth",
            "rtmw-dw-x-l_simcc-cocktail14_270e-256x192-20231122.pth",
        ),
        published_gmacs=7.9,
        num_parameters=57_201_207,
        num_state_tensors=728,
    )
)
register(
    RTMWConfig(
        name="rtmw-x-256x192",
        widen_factor=1.25,
        deepen_factor=1.33,
        input_size=(192, 256),
        published=_acc((0.746, 0.770, 0.844, 0.610, 0.672), (0.808, 0.869, 0.896, 0.710, 0.752)),
        official=OfficialFile(
            _URL + "rtmw-x_simcc-cocktail14_pt-ucoco_270e-256x192-13a2546d_20231208.pth",
            "rtmw-x_simcc-cocktail14_pt-ucoco_270e-256x192-13a2546d_20231208.pth",
            sha256_prefix="13a2546d",
        ),
        published_gmacs=13.1,
        num_parameters=92_041_903,
        num_state_tensors=836,
    )
)
register(
    RTMWConfig(
        name="rtmw-l-384x288",
        widen_factor=1.0,
        deepen_factor=1.0,
        input_size=(288, 384),
        published=_acc((0.761, 0.793, 0.884, 0.663, 0.701), (0.824, 0.885, 0.921, 0.752, 0.780)),
        official=OfficialFile(
            _URL + "rtmw-dw-x-l_simcc-cocktail14_270e-384x288-20231122.pth",
            "rtmw-dw-x-l_simcc-cocktail14_270e-384x288-20231122.pth",
        ),
        published_gmacs=17.7,
        num_parameters=57_354_295,
        num_state_tensors=728,
    )
)
register(
    RTMWConfig(
        name="rtmw-x-384x288",
        widen_factor=1.25,
        deepen_factor=1.33,
        input_size=(288, 384),
        published=_acc((0.763, 0.796, 0.884, 0.664, 0.702), (0.826, 0.888, 0.923, 0.755, 0.781)),
        official=OfficialFile(
            _URL + "rtmw-x_simcc-cocktail14_pt-ucoco_270e-384x288-f840f204_20231122.pth",
            "rtmw-x_simcc-cocktail14_pt-ucoco_270e-384x288-f840f204_20231122.pth",
            sha256_prefix="f840f204",
        ),
        published_gmacs=29.3,
        num_parameters=92_194_991,
        num_state_tensors=836,
    )
)


# The embedded demo model: the same modules at an eighth of RTMW-l's width and one block
# per stage (RTMPose-t's depth), trained on rtmw.data.synthetic figures on a 2-core CPU.
SMALL_DEMO_NAME = "rtmw-demo-256x192"  # the suite's model: exports in seconds
register(
    RTMWConfig(
        name=SMALL_DEMO_NAME,
        widen_factor=0.125,
        deepen_factor=0.167,
        input_size=(192, 256),
        num_parameters=2_713_451,
        num_state_tensors=476,
        official=OfficialFile(
            "package:rtmw/models/weights/rtmw-demo_synthetic-2000it-256x192-8b186fbb.pth",
            "rtmw-demo_synthetic-2000it-256x192-8b186fbb.pth",
            sha256_prefix="8b186fbb",
            sha256="8b186fbb7796594b75c81bca0faf1c40437f385d47ce3466039619b5450fd56f",
        ),
        # reproduce: rtmw-train --model rtmw-demo-256x192 --synthetic 3000 --iters 2000 \
        #   --batch 32 --lr 2e-3 --warmup 100 --val-every 500 --rotate-factor 20 \
        #   --dropout-prob 0.2 --seed 21 --threads 2 --out runs/demo   (59 min, 2 CPU cores)
        description="demo: reduced RTMW trained on synthetic whole-body figures (not published)",
    )
)


# The embedded demo model since rtmw 0.1 (issue 20): closer to the family, a quarter of
# RTMW-l's width at RTMW-m's depth ratio (2/4/4/2 blocks), trained on rtmw.data.synthetic
# figures on a 2-core CPU (results/demo-training, v3: results/demo-training-v3); its INT8
# policies are searched per target (results/policy-search).
register(
    RTMWConfig(
        name="rtmw-demo-wide-256x192",
        widen_factor=0.25,
        deepen_factor=0.67,
        input_size=(192, 256),
        num_parameters=6_172_527,
        num_state_tensors=620,
        official=OfficialFile(
            "package:rtmw/models/weights/rtmw-demo-wide_synthetic-5000it-256x192-9148f902.pth",
            "rtmw-demo-wide_synthetic-5000it-256x192-9148f902.pth",
            sha256_prefix="9148f902",
            sha256="9148f902911c25aa8833cb09b677890ecbf4f16341c09e3a5a872d5797197f96",
        ),
        # v3 (issue 32): v2's 3,000 iterations (results/demo-training) + 2,000 fine-tuning
        # with the hand keypoints' loss doubled (results/demo-training-v3/README.md)
        description="demo: quarter-width RTMW trained on synthetic whole-body figures",
    )
)
DEMO_NAME = "rtmw-demo-wide-256x192"


# RTMW3D (the paper's second contribution; mmpose projects/rtmpose3d): RTMW-l/x at
# 384×288 plus a third SimCC classifier over root-relative depth. Published: COCO-WholeBody
# whole-body AP and H3WB MPJPE (metres, root-aligned), from the project README (its
# x file is named 8xb64 while its config is 8xb32).
_URL3D = "https://download.openmmlab.com/mmpose/v1/wholebody_3d_keypoint/rtmw3d/"
register(
    RTMWConfig(
        name="rtmw3d-l-384x288",
        widen_factor=1.0,
        deepen_factor=1.0,
        input_size=(288, 384),
        depth_size=288,
        simcc_sigma=(6.0, 6.93),
        simcc_sigma_z=6.0,
        num_parameters=57_501_751,
        num_state_tensors=729,
        official=OfficialFile(
            _URL3D + "rtmw3d-l_8xb64_cocktail14-384x288-794dbc78_20240626.pth",
            "rtmw3d-l_8xb64_cocktail14-384x288-794dbc78_20240626.pth",
            sha256_prefix="794dbc78",
        ),
        description="RTMW3D-l: COCO-WholeBody AP 0.678, H3WB MPJPE 0.056 m (published)",
        extra={"published_wholebody_ap": "0.678", "published_h3wb_mpjpe_m": "0.056"},
    )
)
register(
    RTMWConfig(
        name="rtmw3d-x-384x288",
        widen_factor=1.25,
        deepen_factor=1.33,
        input_size=(288, 384),
        depth_size=288,
        simcc_sigma=(6.0, 6.93),
        simcc_sigma_z=6.0,
        num_parameters=92_342_447,
        num_state_tensors=837,
        official=OfficialFile(
            _URL3D + "rtmw3d-x_8xb64_cocktail14-384x288-b0a0eab7_20240626.pth",
            "rtmw3d-x_8xb64_cocktail14-384x288-b0a0eab7_20240626.pth",
            sha256_prefix="b0a0eab7",
        ),
        description="RTMW3D-x: COCO-WholeBody AP 0.680, H3WB MPJPE 0.057 m (published)",
        extra={"published_wholebody_ap": "0.680", "published_h3wb_mpjpe_m": "0.057"},
    )
)


# The RTMW3D demo: the 2D demo's architecture plus the z classifier, at the 2D demo's
# input size with the codec's depth size equal to the crop width (as RTMW3D's 288 is);
# fine-tuned from the 2D demo weights on synthetic 3D figures (results/demo-3d-training).
register(
    RTMWConfig(
        name="rtmw3d-demo-wide-256x192",
        widen_factor=0.25,
        deepen_factor=0.67,
        input_size=(192, 256),
        depth_size=192,
        simcc_sigma_z=4.9,  # RTMW's sigma at this input size, on the depth axis too
        num_parameters=6_172_527 + 256 * 384,
        num_state_tensors=621,
        official=OfficialFile(
            "package:rtmw/models/weights/rtmw3d-demo-wide_synthetic-500it-256x192-2caffb7e.pth",
            "rtmw3d-demo-wide_synthetic-500it-256x192-2caffb7e.pth",
            sha256_prefix="2caffb7e",
            sha256="2caffb7e54f50365baed6933979c50948872d76b33bc9176601acfc965952c35",
        ),
        # reproduce: results/demo-3d-training/README.md (rtmw-train, 500 iterations)
        description="demo: quarter-width RTMW3D fine-tuned on synthetic 3D figures",
    )
)
DEMO_3D_NAME = "rtmw3d-demo-wide-256x192"


def get_config(name: str) -> RTMWConfig:
    """Look a configuration up by zoo name; an unknown name lists the known ones."""
    try:
        return ZOO[name]
    except KeyError:
        known = ", ".join(sorted(ZOO))
        raise RtmwError(f"unknown RTMW configuration {name!r}; known: {known}") from None


def list_models() -> list[str]:
    return sorted(ZOO)


def published_models() -> list[str]:
    """The zoo entries with published accuracy (the official RTMW checkpoints)."""
    return sorted(name for name, config in ZOO.items() if config.published is not None)
