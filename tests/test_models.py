"""The reference networks: output shapes, state_dict layout, and equality with their plain-torch
twins (same architecture built from torch.nn) given the same weights, in train and eval mode."""
import pytest
import torch

from medkern import models
from tolerances import assert_close


@pytest.mark.parametrize("in_channels,classes,batch", [(1, 2, 3), (3, 9, 1), (1, 14, 5)])
@pytest.mark.parametrize("name", ["seedcnn", "resnet18"])
def test_output_shape(name, in_channels, classes, batch):
    model = models.build_model(name, in_channels, classes)
    out = model(torch.randn(batch, in_channels, 28, 28))
    assert out.shape == (batch, classes)
    assert torch.isfinite(out).all()


def test_seed_cnn_layers_are_medkern_modules():
    import medkern.nn
    model = models.SeedCNN()
    assert isinstance(model.conv1, medkern.nn.Conv2d) and isinstance(model.conv2, medkern.nn.Conv2d)
    assert isinstance(model.pool1, medkern.nn.MaxPool2d) and isinstance(model.fc, medkern.nn.Linear)
    assert model.fc.in_features == 64 * 5 * 5
    assert sum(p.numel() for p in model.parameters()) == 32 * 9 + 32 + 64 * 32 * 9 + 64 + 1600 * 2 + 2


def test_resnet18_layout_matches_torchvision_names():
    model = models.resnet18_28(in_channels=1, num_classes=2)
    keys = set(model.state_dict())
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_var", "layer4.1.bn2.weight", "fc.weight", "fc.bias"):
        assert key in keys
    assert "layer1.0.downsample.0.weight" not in keys  # same shape, identity shortcut
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    assert sum(p.numel() for p in model.parameters()) == 11_168_706


@pytest.mark.parametrize("name", ["seedcnn", "resnet18"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_forward_and_backward_equal_torch_twin(name, mode):
    medkern_model = models.build_model(name, 1, 3)
    torch_model = models.build_model(name, 1, 3, layers=torch.nn)
    assert set(medkern_model.state_dict()) == set(torch_model.state_dict())
    if name == "resnet18":  # make BN running statistics non-trivial so eval mode exercises them
        with torch.no_grad():
            for m in medkern_model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
    torch_model.load_state_dict(medkern_model.state_dict())
    getattr(medkern_model, mode)()
    getattr(torch_model, mode)()
    x = torch.randn(4, 1, 28, 28)
    out_m, out_t = medkern_model(x), torch_model(x)
    assert_close(out_m, out_t)
    out_m.square().sum().backward()
    out_t.square().sum().backward()
    # gradients pass through up to 18 layers (and train-mode batch statistics), each summing in
    # its own order, so they are compared relative to each tensor's largest entry
    grads_t = dict(torch_model.named_parameters())
    for key, p in medkern_model.named_parameters():
        expected = grads_t[key].grad
        torch.testing.assert_close(p.grad, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()) + 1e-7,
                                   msg=key)


def test_same_seed_same_initialisation_as_twin():
    torch.manual_seed(3)
    a = models.SeedCNN()
    torch.manual_seed(3)
    b = models.SeedCNN(layers="torch")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="model"):
        models.build_model("vgg16")
