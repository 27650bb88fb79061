"""Normalization fused with ReLU / LeakyReLU (one pass forward, one backward) against the norm then
the activation — torch's, and medkern's unfused ops — for batch, instance and group norm: outputs,
gradients, running statistics, float64 gradcheck, the fused layers' state_dict keys (checkpoints of
the unfused model load), and accelerate()'s fusion inside nn.Sequential."""
import copy

import pytest
import torch
import torch.nn.functional as F

import medkern
import medkern.nn
from medkern.ops import batch_norm, group_norm, instance_norm, leaky_relu, relu
from tolerances import assert_close

DTYPES = [torch.float32, torch.float64]
ACTIVATIONS = [("relu", 0.01), ("leaky_relu", 0.01), ("leaky_relu", 0.2), ("leaky_relu", -0.3)]


def torch_activation(name, slope):
    return (lambda z: F.relu(z)) if name == "relu" else (lambda z: F.leaky_relu(z, slope))


def medkern_activation(name, slope):
    return (lambda z: relu(z)) if name == "relu" else (lambda z: leaky_relu(z, slope))


def norms(kind, c, dtype, training):
    """(fused call, torch norm call, medkern unfused norm call) on (x, w, b), with their own
    running statistics where the norm has them."""
    rm, rv = torch.randn(c, dtype=dtype), torch.rand(c, dtype=dtype) + 0.5
    stats = [(rm.clone(), rv.clone()) for _ in range(3)]
    if kind == "batch":
        return [lambda x, w, b, s=s, f=f: f(x, s[0], s[1], w, b, training, 0.2, 1e-4)
                for s, f in zip(stats, (batch_norm, F.batch_norm, batch_norm))], stats
    if kind == "instance":
        return [lambda x, w, b, s=s, f=f: f(x, s[0], s[1], w, b, training, 0.2, 1e-4)
                for s, f in zip(stats, (instance_norm, F.instance_norm, instance_norm))], stats
    return [lambda x, w, b, f=f: f(x, 3, w, b, 1e-4) for f in (group_norm, F.group_norm, group_norm)], stats


def fused_call(kind, name, slope, stats, training):
    kw = dict(activation=name, negative_slope=slope)
    if kind == "batch":
        return lambda x, w, b: batch_norm(x, stats[0], stats[1], w, b, training, 0.2, 1e-4, **kw)
    if kind == "instance":
        return lambda x, w, b: instance_norm(x, stats[0], stats[1], w, b, training, 0.2, 1e-4, **kw)
    return lambda x, w, b: group_norm(x, 3, w, b, 1e-4, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["batch", "instance", "group"])
@pytest.mark.parametrize("activation,slope", ACTIVATIONS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(3, 6, 5, 7), (2, 6, 3, 4, 5), (2, 6, 33, 9)])
def test_fused_matches_norm_then_activation(shape, kind, activation, slope, training, dtype):
    if kind == "group" and not training:
        pytest.skip("group norm has no eval mode")
    c = shape[1]
    (_, torch_norm, medkern_norm), stats = norms(kind, c, dtype, training)
    fused = fused_call(kind, activation, slope, stats[0], training)
    x = torch.randn(shape, dtype=dtype) * 2 + 0.5
    w, b = torch.rand(c, dtype=dtype) + 0.5, torch.randn(c, dtype=dtype)
    references = [(lambda x, w, b: torch_activation(activation, slope)(torch_norm(x, w, b)), stats[1]),
                  (lambda x, w, b: medkern_activation(activation, slope)(medkern_norm(x, w, b)), stats[2])]
    g = torch.randn(shape, dtype=dtype)
    leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    out = fused(*leaves)
    out.backward(g)
    for reference, ref_stats in references:
        ref_leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        expected = reference(*ref_leaves)
        expected.backward(g)
        assert_close(out, expected, op="norm_act")
        for name, a, e in zip(("input", "weight", "bias"), leaves, ref_leaves):
            assert_close(a.grad, e.grad, f"gradient of {name}", op="norm_act")
        for a, e in zip(stats[0], ref_stats):  # running statistics (updated identically)
            assert_close(a, e, "running statistics", op="norm_act")


def test_fused_gradcheck_float64():
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_()
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    for act, slope in (("relu", 0.01), ("leaky_relu", 0.1)):
        kw = dict(activation=act, negative_slope=slope)
        assert torch.autograd.gradcheck(lambda x, w, b: group_norm(x, 2, w, b, **kw), (x, w, b))
        assert torch.autograd.gradcheck(lambda x, w, b: instance_norm(x, None, None, w, b, **kw), (x, w, b))
        assert torch.autograd.gradcheck(lambda x, w, b: batch_norm(x, None, None, w, b, True, **kw), (x, w, b))


def test_fused_backward_saves_the_input_and_statistics_only():
    """The fused op keeps one activation-sized tensor (the input) for its backward, where the
    unfused pair keeps two (the norm's input and the activation's output)."""
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        group_norm(x, 2, activation="leaky_relu")
    assert sorted(saved) == [2 * 2, 2 * 2, x.numel()]


# ---- layers and accelerate -------------------------------------------------------------------


def unet_block(norm, act):
    return torch.nn.Sequential(torch.nn.Conv2d(2, 6, 3, padding=1), norm, act, torch.nn.Conv2d(6, 4, 1))


@pytest.mark.parametrize("norm,act", [
    (lambda: torch.nn.InstanceNorm2d(6, affine=True), lambda: torch.nn.LeakyReLU(0.01, inplace=True)),
    (lambda: torch.nn.InstanceNorm2d(6, track_running_stats=True), lambda: torch.nn.ReLU()),
    (lambda: torch.nn.GroupNorm(3, 6), lambda: torch.nn.LeakyReLU(0.2)),
    (lambda: torch.nn.BatchNorm2d(6), lambda: torch.nn.ReLU(inplace=True)),
])
@pytest.mark.parametrize("training", [True, False])
def test_accelerate_fuses_norm_and_activation(norm, act, training):
    reference = unet_block(norm(), act()).double()
    with torch.no_grad():
        for p in reference[1].parameters():
            p.uniform_(0.5, 1.5)
    keys = list(reference.state_dict())
    model = medkern.accelerate(copy.deepcopy(reference))
    fused = model.medkern_report["fused"]
    assert fused[0].startswith(f"1 + 2 ({type(reference[1]).__name__} + {type(reference[2]).__name__}: one pass")
    # a BatchNorm with running statistics is also folded into the convolution before it (eval mode)
    folds = [f for f in fused[1:] if f.startswith("0 + 1 + ") and "folded" in f]
    assert len(folds) == (1 if isinstance(reference[1], torch.nn.BatchNorm2d) else 0) and len(fused) == 1 + len(folds)
    assert isinstance(model[1], medkern.nn.NormAct) and type(model[2]) is torch.nn.Identity
    assert list(model.state_dict()) == keys
    model.load_state_dict(reference.state_dict())  # a checkpoint of the unfused model loads
    reference.train(training), model.train(training)
    for _ in range(2):
        x = torch.randn(3, 2, 7, 6, dtype=torch.float64)
        xr, xm = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, ref = model(xm), reference(xr)
        assert_close(out, ref, op="network")
        g = torch.randn_like(ref)
        out.backward(g), ref.backward(g)
        assert_close(xm.grad, xr.grad, op="network")
        for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
            assert_close(p.grad, q.grad, name, op="network")
    for (name, a), (_, e) in zip(model.named_buffers(), reference.named_buffers()):
        assert_close(a, e, name, op="network")


def test_accelerate_does_not_fuse_across_other_layers_or_hooks():
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Identity(), torch.nn.ReLU(), torch.nn.GroupNorm(1, 3),
                                torch.nn.ReLU())
    model[4].register_forward_hook(lambda *args: None)
    medkern.accelerate(model)
    assert model.medkern_report["fused"] == []
    assert type(model[0]) is medkern.nn.BatchNorm2d and type(model[4]) is medkern.nn.ReLU


def test_fuse_norm_act_checks_its_arguments():
    with pytest.raises(TypeError, match="'norm'"):
        medkern.nn.fuse_norm_act(torch.nn.Conv2d(1, 1, 1), torch.nn.ReLU())
    with pytest.raises(TypeError, match="'activation'"):
        medkern.nn.fuse_norm_act(torch.nn.GroupNorm(1, 2), torch.nn.GELU())
    layer = medkern.nn.fuse_norm_act(torch.nn.InstanceNorm3d(2), torch.nn.LeakyReLU(0.3))
    assert type(layer) is medkern.nn.InstanceNormAct3d and "negative_slope=0.3" in repr(layer)
    x = torch.randn(2, 2, 3, 4, 5)
    assert_close(layer(x), F.leaky_relu(F.instance_norm(x), 0.3), op="norm_act")
