"""Where a call runs: medkern's kernel or torch's, and directly or through the torch dispatcher.

A functional wrapper may call an op's implementation directly in eager mode on plain CPU/CUDA
tensors: the custom op's dispatch (schema defaults, ADInplaceOrView, autograd wrapper) costs
40-200 us per call from Python, a large share of a small layer. Under torch.compile, fake
tensors, tensor subclasses or an active TorchDispatchMode (make_fx, FlopCounterMode, recorders)
the registered op is used, so tracing and export still see medkern ops.

An implementation runs torch's own kernel where medkern's has nothing to do or cannot run: an
operand without elements (medkern's kernels and shape rules need at least one; torch defines the
empty result, its dtype and shape, including its quirks, and raises where it refuses the call),
or a CUDA tensor for which this build has no medkern kernel.
"""
from __future__ import annotations

import torch

from .._backend import _C, needs_torch_fallback

_KERNEL_NAMES = frozenset(_C.KERNEL_OP_NAMES)


def direct_call_ok(*tensors) -> bool:
    if torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() > 0:
        return False
    for t in tensors:
        if t is not None and (type(t) is not torch.Tensor or t.is_meta):
            return False
    return True


def direct_backward_ok(*tensors) -> bool:
    """direct_call_ok for a backward pass: also no graph is being recorded (create_graph=True),
    which must see the registered backward ops to differentiate them again."""
    return not torch.is_grad_enabled() and direct_call_ok(*tensors)


def uses_torch_kernel(kernel: str, *tensors) -> bool:
    """True where an implementation runs torch's kernel instead of medkern's ``kernel`` (a name
    from ``_C``, e.g. 'conv2d_forward'): some of ``tensors`` has no elements, or ``tensors[0]``
    is on a GPU this build has no medkern kernel for (warned once by needs_torch_fallback)."""
    for t in tensors:
        if t is not None and t.numel() == 0:
            return True
    first = tensors[0]
    # needs_torch_fallback is False off the GPU; it is still called for a name it would reject
    return (first.is_cuda or kernel not in _KERNEL_NAMES) and needs_torch_fallback(first, kernel)
