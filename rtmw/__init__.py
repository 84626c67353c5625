"""rtmw: RTMW whole-body pose models from mmpose checkpoints to edge deployments.

Heavy backends (onnxruntime, OpenVINO, ncnn, TensorRT) are optional extras and are
imported only where they are used; ``import rtmw`` costs numpy and nothing else.
"""

from rtmw.errors import RtmwError

__version__ = "0.1.0"

__all__ = ["RtmwError", "__version__"]
