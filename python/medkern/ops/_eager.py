"""When a functional wrapper may call an op's implementation directly instead of going through
the torch dispatcher: eager mode on plain CPU/CUDA tensors with no autograd to record. The
custom op's dispatch (schema defaults, ADInplaceOrView, autograd wrapper) costs 40-200 us
per call from Python, a large share of a small layer; under torch.compile, fake tensors, tensor
subclasses or an active TorchDispatchMode (make_fx, FlopCounterMode, recorders) the registered
op is used, so tracing and export still see medkern ops."""
from __future__ import annotations

import torch


def direct_call_ok(*tensors) -> bool:
    if torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() > 0:
        return False
    for t in tensors:
        if t is not None and (type(t) is not torch.Tensor or t.is_meta):
            return False
    return True
