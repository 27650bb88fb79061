"""medkern's functional ops, registered as torch custom ops ``torch.ops.medkern.*``.

Each wrapper has the signature and semantics of its ``torch.nn.functional`` namesake. Each
op family lives in its own module: the op registration (``torch.library.custom_op``), its
``register_fake`` and its ``register_autograd`` (backward itself an op).
"""
from .activation import relu
from .batch_norm import batch_norm
from .conv2d import conv2d, conv2d_relu
from .linear import linear
from .pooling import avg_pool2d, max_pool2d

__all__ = ["conv2d", "conv2d_relu", "linear", "max_pool2d", "avg_pool2d", "batch_norm", "relu"]
