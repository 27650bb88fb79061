"""A static-shape training step (forward, loss, backward, optimizer step) captured once in a CUDA
graph and replayed per batch, so a step costs one graph launch instead of hundreds of kernel
launches and Python calls: what small networks on a GPU are bound by.

    step = GraphedTrainStep(model, optimizer, loss_fn, example_x, example_y)
    for x, y in loader:
        loss = step(x, y) if step.accepts(x, y) else eager_step(x, y)

Requirements (checked, with errors naming the argument): the model, its batches and the
optimizer's state on one CUDA device; an optimizer that can run inside a graph (Adam / AdamW
with ``capturable=True``, or SGD); for a learning-rate schedule, the learning rate as a CUDA
tensor (``lr=torch.tensor(1e-3, device="cuda")``: schedulers fill it in place, where a float
would be frozen into the graph). Capturing needs a few warm-up steps; the model's and the
optimizer's state are restored in place after them (state the warm-up created is zeroed, which
is its fresh value), so the graphed run trains exactly as the eager one.
The returned loss is the graph's static output tensor: overwritten by the next replay.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch

__all__ = ["GraphedTrainStep", "LazyGraphedStep", "make_capturable_optimizer"]


def make_capturable_optimizer(name: str, params, lr: float, weight_decay: float, device: torch.device):
    """``make_optimizer``'s recipe in its graph-safe form: Adam with capturable=True, the learning
    rate a tensor on ``device`` (so schedulers still reach a captured step)."""
    lr_tensor = torch.tensor(float(lr), device=device)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr_tensor, weight_decay=weight_decay, capturable=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr_tensor, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"argument 'optimizer' must be 'adam' or 'sgd', got '{name}'")


def _check(model: torch.nn.Module, optimizer: torch.optim.Optimizer, example_x: torch.Tensor,
           example_y: torch.Tensor) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"argument 'model' must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"argument 'optimizer' must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    for name, t in (("example_x", example_x), ("example_y", example_y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"argument '{name}' must be a torch.Tensor, got {type(t).__name__}")
    for group in optimizer.param_groups:
        if group.get("capturable") is False:
            raise ValueError(f"argument 'optimizer': {type(optimizer).__name__} must be built with capturable=True "
                             f"to run inside a CUDA graph")
        if group.get("fused") or group.get("differentiable"):
            raise ValueError("argument 'optimizer': fused or differentiable optimizers are not captured here")
        if group.get("dampening", 0) != 0:
            # a fresh momentum buffer is set up as zeros before capture, which equals torch's first
            # step (buffer = gradient) only without dampening
            raise ValueError("argument 'optimizer': SGD with dampening is not captured here")
    device = example_x.device
    if device.type != "cuda":
        raise ValueError(f"argument 'example_x' must be on a CUDA device for CUDA graphs, got {device}")
    if example_y.device != device:
        raise ValueError(f"argument 'example_y' is on {example_y.device}, 'example_x' on {device}")
    for name, p in model.named_parameters():
        if p.device != device:
            raise ValueError(f"argument 'model': parameter {name} is on {p.device}, the batch on {device}")


def _restore_optimizer(optimizer: torch.optim.Optimizer, before: dict) -> None:
    """Puts the optimizer's state back as it was before the warm-up, in place, so the capture
    records updates of these very tensors. State the warm-up created (a fresh optimizer's step
    counts and moments) is zeroed rather than dropped: created during capture, its initialisation
    would be recorded too and replayed on every step."""
    for param, state in optimizer.state.items():
        old = before.get(param, {})
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                if key in old:
                    value.copy_(old[key])
                else:
                    value.zero_()
            elif key in old:
                state[key] = old[key]
            else:
                raise ValueError(f"argument 'optimizer': its state '{key}' is a Python number, which a CUDA graph "
                                 f"cannot update (build it with capturable=True)")


class GraphedTrainStep:
    """``step(x, y)`` copies the batch into the graph's static inputs, replays the captured step
    and returns the static loss tensor. ``accepts(x, y)``: whether a batch has the captured
    shapes and dtypes (a last, smaller batch does not: run it eagerly)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
                 example_x: torch.Tensor, example_y: torch.Tensor, warmup: int = 3):
        if warmup < 1:
            raise ValueError(f"argument 'warmup' must be at least 1, got {warmup}")
        _check(model, optimizer, example_x, example_y)
        device = example_x.device
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.static_x, self.static_y = example_x.clone(), example_y.clone()
        model.train()
        saved_model = copy.deepcopy(model.state_dict())
        saved_state = {p: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in st.items()}
                       for p, st in optimizer.state.items()}
        # warm-up on a side stream (as torch's capture recipe asks): lazy state, workspaces, autotuning
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self._eager_step(self.static_x, self.static_y)
        torch.cuda.current_stream(device).wait_stream(side)
        model.load_state_dict(saved_model)      # in place: parameters keep their identity
        _restore_optimizer(optimizer, saved_state)
        self.graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.static_loss = loss_fn(model(self.static_x), self.static_y)
            self.static_loss.backward()
            optimizer.step()

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss

    def accepts(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        return (x.shape == self.static_x.shape and y.shape == self.static_y.shape and x.dtype == self.static_x.dtype
                and y.dtype == self.static_y.dtype and x.device == self.static_x.device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.accepts(x, y):
            raise ValueError(f"arguments 'x', 'y': the graph was captured for {tuple(self.static_x.shape)} / "
                             f"{tuple(self.static_y.shape)} on {self.static_x.device}, got {tuple(x.shape)} / "
                             f"{tuple(y.shape)} on {x.device} (run that batch eagerly)")
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_loss


class LazyGraphedStep:
    """Captures a GraphedTrainStep at the first batch of ``batch_size`` samples and replays it for
    every batch of that shape; ``step(x, y)`` returns the loss, or None for a batch the caller
    must run eagerly (a last, smaller one)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, batch_size: int):
        self.model, self.optimizer, self.loss_fn, self.batch_size = model, optimizer, loss_fn, int(batch_size)
        self.graphed: GraphedTrainStep | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        if self.graphed is None:
            if x.shape[0] != self.batch_size:
                return None
            self.graphed = GraphedTrainStep(self.model, self.optimizer, self.loss_fn, x, y)
        return self.graphed(x, y) if self.graphed.accepts(x, y) else None
