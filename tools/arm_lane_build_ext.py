"""xtcocotools' C extension alone, built by the arm64 gcc under emulation (tools/arm_lane.sh).

Its setup.py asks for matplotlib and more at build time; the lane needs only ``_mask``.
"""

import numpy as np
from setuptools import Extension, setup

setup(
    name="xtcocotools-mask",
    ext_modules=[
        Extension(
            "xtcocotools._mask",
            sources=["./common/maskApi.c", "xtcocotools/_mask.pyx"],
            include_dirs=[np.get_include(), "./common"],
        )
    ],
    script_args=["build_ext", "--inplace"],
)
