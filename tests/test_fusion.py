"""Fusion across layers (medkern/nn/fusion.py): each pattern that accelerate() fuses gives the
same outputs as the untouched torch model, in training and in eval mode, 2-D and 3-D; the eval
cache (folded BatchNorm, prepared CPU weights) follows in-place weight changes; prepared weights
give bit-identical convolutions; and the patterns are found in models that torch.fx cannot trace."""
import copy

import pytest
import torch
import torch.nn.functional as F

import medkern
from medkern.nn import fusion
from tolerances import assert_close


def randomize_norms(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


class Block(torch.nn.Module):
    """conv -> bn -> act, a conv -> relu, and a residual add: a model torch.fx traces."""

    def __init__(self, dims, act, bias):
        super().__init__()
        conv, bn = getattr(torch.nn, f"Conv{dims}d"), getattr(torch.nn, f"BatchNorm{dims}d")
        self.conv1 = conv(3, 8, 3, padding=1, bias=bias)
        self.bn1 = bn(8)
        self.act = act
        self.conv2 = conv(8, 8, 3, padding=1, bias=bias)
        self.relu2 = torch.nn.ReLU()
        self.conv3 = conv(8, 8, 1, bias=False)
        self.bn3 = bn(8)

    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        y = self.relu2(self.conv2(y))
        return self.bn3(self.conv3(y)) + y


ACTS = {"relu": torch.nn.ReLU, "leaky_relu": lambda: torch.nn.LeakyReLU(0.2)}


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("bias", [True, False])
def test_fused_block_matches_torch(dims, act, bias):
    torch.manual_seed(dims)
    # float64: a bias before a training-mode BatchNorm has a zero gradient, which float32 leaves as noise
    reference = randomize_norms(Block(dims, ACTS[act](), bias)).double()
    model = medkern.accelerate(copy.deepcopy(reference))
    kinds = " | ".join(model.medkern_report["fused"])
    assert "bn1 + act" in kinds and "conv1 + bn1 + " + act in kinds and "conv3 + bn3 (" in kinds
    assert "conv2 + relu2" in kinds and "found by fx" in kinds
    assert type(model.act) is torch.nn.Identity and model.conv2.fuse_relu
    x = torch.randn(3, 3, *([9] * dims), dtype=torch.float64)
    for mode in (True, False):
        reference.train(mode)
        model.train(mode)
        with torch.no_grad():
            assert_close(model(x), reference(x), op="network")
    # the training step's gradients too
    reference.train()
    model.train()
    out_ref, out_mk = reference(x), model(x)
    grad = torch.randn_like(out_ref)
    out_ref.backward(grad)
    out_mk.backward(grad)
    for (name, p_mk), (_, p_ref) in zip(model.named_parameters(), reference.named_parameters()):
        assert_close(p_mk.grad, p_ref.grad, name, op="network")


def test_fold_runs_only_without_parameter_gradients():
    reference = randomize_norms(Block(2, torch.nn.ReLU(), True)).eval()
    model = medkern.accelerate(copy.deepcopy(reference)).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        model(x)
        assert fusion.passes_through(model.bn1)
    assert not fusion.passes_through(model.bn1)  # grad mode with parameters that need gradients
    out = model(x)
    out.sum().backward()
    reference(x).sum().backward()
    assert_close(model.conv1.weight.grad, reference.conv1.weight.grad, op="network")
    assert_close(model.bn1.weight.grad, reference.bn1.weight.grad, op="network")
    # frozen parameters: folded even with an input that needs a gradient (saliency maps)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in reference.parameters():
        p.requires_grad_(False)
    xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_mk, out_ref = model(xm), reference(xr)
    assert fusion.passes_through(model.bn1)
    out_mk.sum().backward()
    out_ref.sum().backward()
    assert_close(xm.grad, xr.grad, op="network")


def test_eval_cache_follows_weight_updates():
    reference = randomize_norms(Block(2, torch.nn.ReLU(), True)).eval()
    model = medkern.accelerate(copy.deepcopy(reference)).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert_close(model(x), reference(x), op="network")
        assert fusion._CACHE in model.conv1.__dict__
        for m in (model, reference):  # in-place updates bump version counters
            m.conv1.weight.mul_(1.5)
            m.bn1.running_var.add_(0.3)
            m.conv3.weight.neg_()
        assert_close(model(x), reference(x), op="network")
        model.load_state_dict(randomize_norms(copy.deepcopy(reference)).state_dict())
        reference.load_state_dict(model.state_dict())
        assert_close(model(x), reference(x), op="network")
        # a change through .data is invisible to version counters: clear_inference_cache sees it
        model.conv2.weight.data.mul_(2.0)
        reference.conv2.weight.data.mul_(2.0)
        fusion.clear_inference_cache(model)
        assert_close(model(x), reference(x), op="network")
    model.train()
    assert fusion._CACHE not in model.conv1.__dict__


class Untraceable(torch.nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, the Sequential patterns still apply."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                        torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU())

    def forward(self, x):
        if x.sum() > 0:
            return self.body(x)
        return self.body(-x)


def test_untraceable_model_fuses_sequential_patterns():
    reference = randomize_norms(Untraceable()).eval()
    model = medkern.accelerate(copy.deepcopy(reference))
    fused = model.medkern_report["fused"]
    assert all("found by sequential" in f for f in fused) and len(fused) == 3
    x = torch.randn(2, 1, 10, 10)
    with torch.no_grad():
        assert_close(model(x), reference(x), op="network")
        assert_close(model(-x), reference(-x), op="network")


def test_shared_activation_module_is_not_fused():
    class Shared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm2d(2)
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            return self.relu(self.bn(x)) + self.relu(x)

    model = medkern.accelerate(Shared())
    assert not any("relu" in f for f in model.medkern_report["fused"])
    assert type(model.relu) is medkern.nn.ReLU


def test_accelerate_without_fusion():
    model = medkern.accelerate(Block(2, torch.nn.ReLU(), True), fuse=False)
    assert model.medkern_report["fused"] == [] and type(model.act) is medkern.nn.ReLU


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [
    (3, 64, 16, 16, 64, 3, 1, 1),   # the Winograd path
    (2, 32, 13, 13, 64, 3, 1, 0),   # the GEMM path
    (2, 16, 9, 9, 24, 3, 2, 1),     # strided GEMM
    (2, 256, 7, 7, 128, 1, 2, 0),   # 1x1 strided
    (2, 1, 12, 12, 16, 3, 1, 1),    # the direct kernel: nothing to prepare
])
def test_prepared_weights_give_identical_convolutions(dtype, shape):
    n, c, h, w, k, r, stride, pad = shape
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w, dtype=dtype)
    weight = torch.randn(k, c, r, r, dtype=dtype) / (c * r * r) ** 0.5  # outputs of order 1, as in a network
    bias = torch.randn(k, dtype=dtype)
    prepared = medkern.ops.prepare_conv_weight(weight, (1, c, h, w), stride, pad)
    if c == 1:
        assert prepared is None
    else:
        assert prepared.dtype == torch.uint8 and prepared.numel() > 64
    plain = medkern.ops.conv2d_relu(x, weight, bias, stride, pad)
    reused = medkern.ops.conv2d_relu(x, weight, bias, stride, pad, prepared=prepared)
    assert torch.equal(plain, reused)
    assert_close(reused, F.relu(F.conv2d(x, weight, bias, stride, pad)), op="conv2d")


def test_prepared_weights_of_another_layer_are_ignored():
    x, weight = torch.randn(2, 64, 16, 16), torch.randn(64, 64, 3, 3) / 24
    other = medkern.ops.prepare_conv_weight(torch.randn(64, 64, 3, 3), (1, 64, 8, 8), 1, 0)  # GEMM path, 8x8
    out = medkern.ops.conv2d(x, weight, None, 1, 1, prepared=other)
    assert_close(out, F.conv2d(x, weight, None, 1, 1), op="conv2d")
    x3, w3 = torch.randn(1, 4, 5, 6, 7), torch.randn(6, 4, 3, 3, 3)
    prepared = medkern.ops.prepare_conv_weight(w3, x3.shape, 1, 1)
    assert_close(medkern.ops.conv3d(x3, w3, None, 1, 1, prepared=prepared), F.conv3d(x3, w3, None, 1, 1),
                 op="conv3d")


def test_prepare_conv_weight_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'weight'"):
        medkern.ops.prepare_conv_weight(torch.randn(4, 4), (1, 4, 5, 5))
    with pytest.raises(ValueError, match="'input_shape'"):
        medkern.ops.prepare_conv_weight(torch.randn(4, 4, 3, 3), (4, 5, 5))
    with pytest.raises(ValueError, match="'input'|channels"):
        medkern.ops.prepare_conv_weight(torch.randn(4, 4, 3, 3), (1, 3, 5, 5))
    with pytest.raises(TypeError, match="'prepared'"):
        medkern.ops.conv2d(torch.randn(1, 4, 5, 5), torch.randn(4, 4, 3, 3), prepared="packed")
    assert medkern.ops.prepare_conv_weight(torch.randn(4, 4, 3, 3).half(), (1, 4, 5, 5)) is None
    # the compiled entry point's own checks (the Python wrapper never reaches them)
    from medkern._backend import _C, view
    w = torch.randn(64, 64, 3, 3)
    with pytest.raises(ValueError, match="'prepared' holds 16 bytes"):
        _C.conv_prepare_weight(view(w), [1, 64, 16, 16], [1, 1], [1, 1], [1, 1], 1, view(torch.empty(16, dtype=torch.uint8)))
    with pytest.raises(TypeError, match="'weight' must be float32 or float64"):
        _C.conv_prepare_weight(view(w.half()), [1, 64, 16, 16], [1, 1], [1, 1], [1, 1], 1, view(torch.empty(16)))
    with pytest.raises(ValueError, match="'input_shape' and 'weight' need 4"):
        _C.conv_prepare_weight(view(w), [64, 16, 16], [1, 1], [1, 1], [1, 1], 1, view(torch.empty(16)))
