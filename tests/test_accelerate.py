"""accelerate(): swaps torch.nn layers for medkern's in place; a ResNet-style model gives the
same outputs and gradients as its untouched copy, and layers it cannot take are reported."""
import copy

import pytest
import torch

import medkern
from tolerances import assert_close


class BasicBlock(torch.nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.relu = torch.nn.ReLU(inplace=True)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.down is None else self.down(x)))


def small_resnet(dtype=torch.float64):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), BasicBlock(8, 8, 1), BasicBlock(8, 16, 2),
        torch.nn.AvgPool2d(2, ceil_mode=True), torch.nn.Flatten(), torch.nn.Linear(16 * 2 * 2, 3))
    return model.to(dtype)


@pytest.mark.parametrize("train", [True, False])
def test_accelerated_resnet_matches_outputs_and_gradients(train):
    reference = small_resnet()
    with torch.no_grad():  # non-trivial running statistics for eval mode
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model = medkern.accelerate(copy.deepcopy(reference))
    reference.train(train)
    model.train(train)
    x = torch.randn(5, 1, 15, 15, dtype=torch.float64)
    x_ref = x.clone().requires_grad_()
    x_mk = x.clone().requires_grad_()
    out_ref, out_mk = reference(x_ref), model(x_mk)
    assert_close(out_mk, out_ref, op="network")
    grad = torch.randn_like(out_ref)
    out_ref.backward(grad)
    out_mk.backward(grad)
    assert_close(x_mk.grad, x_ref.grad, op="network")
    for (name, p_mk), (_, p_ref) in zip(model.named_parameters(), reference.named_parameters()):
        assert_close(p_mk.grad, p_ref.grad, name, op="network")
    for (name, b_mk), (_, b_ref) in zip(model.named_buffers(), reference.named_buffers()):
        assert_close(b_mk.to(b_ref.dtype), b_ref, name, op="network")


def test_accelerate_swaps_in_place_and_keeps_parameters():
    model = small_resnet(torch.float32)
    params_before = [id(p) for p in model.parameters()]
    keys_before = list(model.state_dict())
    returned = medkern.accelerate(model)
    assert returned is model
    assert [id(p) for p in model.parameters()] == params_before
    assert list(model.state_dict()) == keys_before
    # the BatchNorm2d + ReLU pair of the Sequential became one fused layer and an Identity
    assert type(model[0]) is medkern.nn.Conv2d and type(model[1]) is medkern.nn.BatchNormAct2d
    assert type(model[2]) is torch.nn.Identity and model[1].activation == "relu"
    fused = model.medkern_report["fused"]
    assert fused[0].startswith("1 + 2 (BatchNorm2d + ReLU: one pass")
    # every convolution feeding a BatchNorm is folded in eval mode: the stem, 2 per block, the shortcut
    folds = [f for f in fused if "folded into the convolution" in f]
    assert sorted(f.split(" (")[0] for f in folds) == sorted(
        ["0 + 1 + relu", "4.conv1 + 4.bn1", "4.conv2 + 4.bn2", "5.conv1 + 5.bn1", "5.conv2 + 5.bn2",
         "5.down.0 + 5.down.1"])
    assert type(model[4].conv1) is medkern.nn.Conv2d and type(model[-1]) is medkern.nn.Linear
    assert model.medkern_report["kept"] == {}
    assert "5.down.0" in model.medkern_report["accelerated"]


def test_accelerate_reports_layers_it_cannot_take():
    class MyConv(torch.nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"),
                                torch.nn.Conv2d(2, 2, 3).half(), MyConv(2, 2, 1), torch.nn.ReLU())
    with pytest.warns(UserWarning, match="kept these layers"):
        medkern.accelerate(model)
    kept = model.medkern_report["kept"]
    assert set(kept) == {"1", "2"}
    assert "float16" in kept["1"] and "own forward" in kept["2"]
    assert type(model[3]) is medkern.nn.ReLU and type(model[0]) is medkern.nn.Conv2d
    assert type(model[1]) is torch.nn.Conv2d and type(model[2]) is MyConv


def test_accelerated_conv_with_circular_padding_matches_torch():
    reference = torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular").double()
    model = medkern.accelerate(copy.deepcopy(reference))
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64)
    assert_close(model(x), reference(x), op="conv2d")
    with pytest.raises(ValueError, match="strict"):
        medkern.accelerate(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3).half()), strict=True)


def test_accelerate_rejects_non_module():
    with pytest.raises(TypeError, match="'model'"):
        medkern.accelerate("resnet")
