"""medkern's functional ops, registered as torch custom ops ``torch.ops.medkern.*``.

Each wrapper has the signature and semantics of its ``torch.nn.functional`` namesake, empty
tensors included. Each op family lives in its own module, built the same way from
``_registration``: implementations over ``_C`` registered as ops (``RegisteredOp``: custom_op +
register_fake) taking their aten counterparts' arguments in aten's order, and a
``DifferentiableOp`` whose backward calls backward ops, registered with register_autograd and run
directly by an eager ``autograd.Function``; ``_eager`` decides per call between the
implementation and the dispatcher, and between medkern's kernel and torch's.
"""
from .activation import leaky_relu, relu
from .batch_norm import batch_norm
from .conv import conv2d, conv2d_relu, conv3d, conv3d_relu, conv_transpose2d, conv_transpose3d, prepare_conv_weight
from .group_norm import group_norm, instance_norm
from .linear import linear
from .pooling import avg_pool2d, avg_pool3d, max_pool2d, max_pool3d

__all__ = ["conv2d", "conv2d_relu", "conv3d", "conv3d_relu", "conv_transpose2d", "conv_transpose3d",
           "prepare_conv_weight", "linear",
           "max_pool2d", "avg_pool2d", "max_pool3d", "avg_pool3d", "batch_norm", "group_norm", "instance_norm", "relu",
           "leaky_relu"]
