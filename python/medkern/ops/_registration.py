"""How every op family is wired, written once: an implementation over ``_C`` registered as a torch
custom op with its fake kernel (``RegisteredOp``), and a differentiable op's two autograd paths,
the registered one and the eager ``autograd.Function`` that skips the dispatcher
(``DifferentiableOp``). A family module then holds only what is its own: the implementations,
output shapes, what the forward saves and the backward formula.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.autograd.function import once_differentiable

from ._eager import direct_call_ok

__all__ = ["RegisteredOp", "DifferentiableOp"]


class RegisteredOp:
    """``impl`` registered as ``torch.ops.medkern.<name>`` (``op``); ``route[direct]`` is ``impl``
    when ``direct`` (see direct_call_ok), else ``op``: a tuple lookup, not one more Python call.

    ``fake`` gives the outputs' shapes and dtypes from medkern's shape rules, which need
    non-empty operands; a call with an empty tensor argument gets ``impl`` itself as its fake
    kernel, since ``impl`` then runs torch's kernel, which works on fake tensors too.
    """

    __slots__ = ("name", "impl", "op", "route", "mutates")

    def __init__(self, name: str, impl: Callable, fake: Callable, mutates_args: Sequence[str] = ()):
        self.name = name
        self.impl = impl
        self.op = torch.library.custom_op(f"medkern::{name}", mutates_args=tuple(mutates_args))(impl)
        self.route = (self.op, impl)
        self.mutates = bool(mutates_args)

        def fake_kernel(*args, **kwargs):
            empty = any(isinstance(a, torch.Tensor) and a.numel() == 0 for a in (*args, *kwargs.values()))
            return (impl if empty else fake)(*args, **kwargs)

        self.op.register_fake(fake_kernel)


class DifferentiableOp:
    """A forward ``RegisteredOp`` with its backward, callable with the op's arguments.

    ``setup_context(ctx, inputs, output)`` and ``backward(ctx, *grads)`` follow
    ``register_autograd``; they serve the registered op (where torch.library allows an autograd
    formula: not on ops that mutate an argument) and an ``autograd.Function`` that calls the
    implementations directly in eager mode. The first ``tensor_count`` arguments are the
    tensors (aten's order puts them first); the first output is the differentiable one.
    ``double_backward`` says that ``backward`` is itself differentiable (its ops have autograd);
    otherwise differentiating it again raises.

    A call whose output has no elements has zero gradients: the loss cannot depend on any input
    through it (torch's own gradients are the same zeros). They are made at forward time instead
    of running backward kernels on empty tensors (aten's batch-norm backward divides by zero there).
    """

    __slots__ = ("forward", "function", "tensor_count", "traced_with_autograd")

    def __init__(self, forward: RegisteredOp, setup_context: Callable, backward: Callable, *, tensor_count: int,
                 double_backward: bool = False):
        def setup(ctx, inputs, output):
            setup_context(ctx, inputs, output)
            ctx.zero_grads = None
            if (output[0] if isinstance(output, tuple) else output).numel() == 0:
                ctx.zero_grads = tuple(torch.zeros_like(a) if isinstance(a, torch.Tensor) else None for a in inputs)

        def backward_or_zeros(ctx, *grads):
            if ctx.zero_grads is not None:
                return tuple(z if need else None for z, need in zip(ctx.zero_grads, ctx.needs_input_grad))
            return backward(ctx, *grads)

        self.forward = forward
        self.tensor_count = tensor_count
        self.traced_with_autograd = not forward.mutates
        if self.traced_with_autograd:
            forward.op.register_autograd(backward_or_zeros, setup_context=setup)
        eager_backward = backward_or_zeros if double_backward else once_differentiable(backward_or_zeros)

        class Function(torch.autograd.Function):
            @staticmethod
            def forward(ctx, *args):
                output = forward.route[direct_call_ok(*args[:tensor_count])](*args)
                setup(ctx, args, output)
                return output

            backward = staticmethod(eager_backward)

        Function.__name__ = Function.__qualname__ = f"{forward.name}_function"
        self.function = Function

    def __call__(self, *args):
        tensors = args[:self.tensor_count]
        recorded = False  # by autograd
        if torch.is_grad_enabled():
            for t in tensors:
                if t is not None and t.requires_grad:
                    recorded = True
                    break
        if recorded:
            if self.traced_with_autograd and torch.compiler.is_compiling():
                return self.forward.op(*args)  # the compiler traces the op and its registered autograd
            return self.function.apply(*args)
        return self.forward.route[direct_call_ok(*tensors)](*args)
