"""Fusion across layers for ``accelerate()``, and the inference-time state it leaves on the layers.

Finding: a model is traced with torch.fx (medkern's and torch's layers as leaves) to find a
convolution whose only consumer is a BatchNorm or a ReLU, and a norm whose only consumer is a
ReLU / LeakyReLU (each module called once in the graph); a model that does not trace (data-dependent control flow)
is searched for the same patterns among consecutive ``nn.Sequential`` entries instead.

Applying, in place (parameters, buffers and state_dict keys unchanged):
- convolution + ReLU: the ReLU runs in the convolution's epilogue (``fuse_relu``) and the ReLU
  module becomes an Identity; the backward reads the mask from the saved output;
- norm + activation: the norm becomes its NormAct variant and the activation module an Identity
  (one pass, forward and backward, in training and inference);
- convolution + BatchNorm: in eval mode, when no parameter of the pair needs a gradient, the
  convolution runs with the BatchNorm folded into its weights and bias (and a fused ReLU in its
  epilogue) and the BatchNorm passes its input through (applying a LeakyReLU it carries); in
  training, or when gradients reach the parameters, both run as before.

Inference cache: in eval mode a medkern convolution keeps its folded weights and, on the CPU,
its prepared (packed / Winograd-transformed) weights, keyed on the identity and version counter
of every tensor they come from, and drops them when its mode changes. A change made through
``.data`` bypasses version counters: call ``clear_inference_cache(model)`` after one.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..ops.conv import prepare_conv_weight

__all__ = ["find_fusions", "apply_fusions", "fusion_summary", "clear_inference_cache", "inference_weights",
           "passes_through"]

_CACHE = "_medkern_inference_cache"
_FOLD = "_medkern_fold"          # on a convolution: (batch norm,)
_FOLDED_INTO = "_medkern_folded_into"  # on a batch norm: (convolution,)


# ---- finding --------------------------------------------------------------------------------------


class _LayerTracer(torch.fx.Tracer):
    """Keeps every torch.nn / medkern.nn layer a leaf, so the graph names modules, not kernels."""

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return type(m).__module__.startswith("medkern.nn") or super().is_leaf_module(m, qualname)


def _convolution(module) -> bool:
    from .conv import Conv2d, Conv3d
    return type(module) in (Conv2d, Conv3d) and not module.fuse_relu


def _batch_norm(module) -> bool:
    from .normalization import BatchNorm2d, BatchNorm3d
    return isinstance(module, (BatchNorm2d, BatchNorm3d))


def _foldable(conv, norm) -> bool:
    return (_convolution(conv) and _batch_norm(norm) and norm.track_running_stats and norm.running_mean is not None
            and norm.num_features == conv.out_channels and not conv._forward_hooks and not conv._forward_pre_hooks
            and not norm._forward_hooks and not norm._forward_pre_hooks)


def _traced_pairs(model: torch.nn.Module) -> Optional[list[tuple[str, str]]]:
    """(producer name, consumer name) of consecutive module calls where the producer's output
    goes only to the consumer and each module is called once; None when the model does not trace."""
    try:
        graph = _LayerTracer().trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure means "use the Sequential patterns"
        return None
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or calls[node.target] != 1 or len(node.users) != 1:
            continue
        user = next(iter(node.users))
        if (user.op == "call_module" and calls[user.target] == 1 and len(user.args) == 1 and user.args[0] is node
                and not user.kwargs):
            pairs.append((node.target, user.target))
    return pairs


def _sequential_pairs(model: torch.nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for seq_name, seq in model.named_modules():
        if type(seq) is not torch.nn.Sequential:
            continue
        prefix = f"{seq_name}." if seq_name else ""
        names = list(seq._modules)
        pairs += [(prefix + a, prefix + b) for a, b in zip(names, names[1:])]
    return pairs


def find_fusions(model: torch.nn.Module):
    """(norm + activation pairs, convolution + batch-norm pairs, convolution + ReLU pairs,
    "fx" or "sequential")."""
    from .normalization import FUSED_NORMS, fusable_activation
    pairs = _traced_pairs(model)
    how = "fx"
    if pairs is None:
        pairs, how = _sequential_pairs(model), "sequential"
    modules = dict(model.named_modules())
    norm_act, conv_norm, conv_relu = [], [], []
    for first, second in pairs:
        a, b = modules.get(first), modules.get(second)
        if a is None or b is None:
            continue
        if type(a) in FUSED_NORMS and not a._forward_hooks and fusable_activation(b) is not None:
            norm_act.append((first, second))
        elif _foldable(a, b):
            conv_norm.append((first, second))
        elif (_convolution(a) and not a._forward_hooks and not a._forward_pre_hooks
              and (fusable_activation(b) or ("",))[0] == "relu"):
            conv_relu.append((first, second))
    return norm_act, conv_norm, conv_relu, how


def _replace(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, torch.nn.Sequential):
        parent._modules[attr] = module
    else:
        setattr(parent, attr, module)


def apply_fusions(model: torch.nn.Module) -> list[str]:
    """Finds and applies the fusions; returns one report line per fusion."""
    from .normalization import fuse_norm_act
    norm_act, conv_norm, conv_relu, how = find_fusions(model)
    modules = dict(model.named_modules())
    report = []
    for conv_name, act_name in conv_relu:
        modules[conv_name].fuse_relu = True
        _replace(model, act_name, torch.nn.Identity())
        report.append(f"{conv_name} + {act_name} ({type(modules[conv_name]).__name__} + ReLU: ReLU in the "
                      f"convolution's epilogue, training and inference; found by {how})")
    for norm_name, act_name in norm_act:
        norm, act = modules[norm_name], modules[act_name]
        kinds = f"{type(norm).__name__} + {type(act).__name__}"
        fuse_norm_act(norm, act)
        _replace(model, act_name, torch.nn.Identity())
        report.append(f"{norm_name} + {act_name} ({kinds}: one pass, training and inference; found by {how})")
    for conv_name, norm_name in conv_norm:
        conv, norm = modules[conv_name], modules[norm_name]
        conv.__dict__[_FOLD] = (norm,)
        norm.__dict__[_FOLDED_INTO] = (conv,)
        act = f" + {norm.activation}" if norm.activation else ""
        report.append(f"{conv_name} + {norm_name}{act} ({type(conv).__name__} + {type(norm).__name__}: folded into "
                      f"the convolution in eval mode; found by {how})")
    return report


def fusion_summary(model: torch.nn.Module) -> str:
    """One phrase for what runs fused in ``model``, e.g. 'fused: 2 conv+ReLU epilogues, 20
    BatchNorms folded into convolutions at eval' (built fused or fused by accelerate)."""
    from .normalization import NormAct
    counts = {"conv+ReLU epilogues": 0, "norm+activation passes": 0, "BatchNorms folded into convolutions at eval": 0}
    for m in model.modules():
        if getattr(m, "fuse_relu", False):
            counts["conv+ReLU epilogues"] += 1
        if isinstance(m, NormAct):
            counts["norm+activation passes"] += 1
        if _FOLD in m.__dict__:
            counts["BatchNorms folded into convolutions at eval"] += 1
    parts = [f"{n} {what}" for what, n in counts.items() if n]
    return "fused: " + (", ".join(parts) if parts else "nothing to fuse")


# ---- inference state --------------------------------------------------------------------------------


def clear_inference_cache(model: torch.nn.Module) -> None:
    """Drops every medkern layer's cached folded / prepared weights (needed only after changing
    weights through ``.data``, which version counters do not see)."""
    for m in model.modules():
        m.__dict__.pop(_CACHE, None)


def _needs_grad(tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _fold_active(conv, norm) -> bool:
    """Whether this call runs the pair folded (the convolution and the norm ask the same)."""
    return (not conv.training and not norm.training and not torch.compiler.is_compiling()
            and not _needs_grad((conv.weight, conv.bias, norm.weight, norm.bias)))


def passes_through(norm) -> bool:
    """Whether a batch norm folded into its convolution only passes its input on in this call."""
    owner = norm.__dict__.get(_FOLDED_INTO)
    return owner is not None and _fold_active(owner[0], norm)


def _folded(norm, weight: torch.Tensor, bias: Optional[torch.Tensor]):
    scale = torch.rsqrt(norm.running_var.to(weight.dtype) + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.to(weight.dtype)
    shift = -norm.running_mean.to(weight.dtype) * scale
    if bias is not None:
        shift = shift + bias * scale
    if norm.bias is not None:
        shift = shift + norm.bias.to(weight.dtype)
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), shift


def inference_weights(conv, input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], padding):
    """(weight, bias, fuse_relu, prepared) for this call of ``conv``: its own with nothing prepared
    in training, else folded with its BatchNorm when that pair is active, and the CPU kernel's
    prepared weights, cached on the layer while every source tensor keeps its identity and version."""
    if conv.training or torch.compiler.is_compiling():  # (train() drops the cache)
        return weight, bias, conv.fuse_relu, None
    fold = conv.__dict__.get(_FOLD)
    norm = fold[0] if fold is not None and _fold_active(conv, fold[0]) else None
    if norm is None and (input.device.type != "cpu" or isinstance(padding, str)):
        return weight, bias, conv.fuse_relu, None  # nothing to fold or prepare
    sources = (weight, bias) if norm is None else (weight, bias, norm.weight, norm.bias, norm.running_mean,
                                                   norm.running_var)
    # the cache holds the source tensors themselves: identity is checked below, versions here
    key = (tuple(None if t is None else t._version for t in sources), tuple(input.shape[1:]), input.dtype,
           input.device)
    cached = conv.__dict__.get(_CACHE)
    if cached is not None and cached[0] == key and all(a is b for a, b in zip(cached[1], sources)):
        return cached[2]
    fuse_relu = conv.fuse_relu
    if norm is not None:
        with torch.no_grad():
            weight, bias = _folded(norm, weight, bias)
        fuse_relu = norm.activation == "relu"
    prepared = None
    if input.device.type == "cpu" and input.dtype == weight.dtype and not isinstance(padding, str):
        prepared = prepare_conv_weight(weight, (1, *input.shape[1:]) if input.dim() == weight.dim() else
                                       (1, *input.shape), conv.stride, padding, conv.dilation, conv.groups)
    result = (weight, bias, fuse_relu, prepared)
    conv.__dict__[_CACHE] = (key, sources, result)
    return result
