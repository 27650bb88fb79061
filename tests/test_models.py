"""The reference networks: output shapes, state_dict layout, and equality with their plain-torch
twins (same architecture built from torch.nn) given the same weights, in train and eval mode."""
import pytest
import torch

from medkern import models
from tolerances import assert_close


def twins(name, in_channels, classes):
    """The medkern model and its plain-torch twin (torch.nn layers) with the same weights."""
    medkern_model = models.build_model(name, in_channels, classes)
    torch_model = models.build_model(name, in_channels, classes, layers=torch.nn)
    assert set(medkern_model.state_dict()) == set(torch_model.state_dict())
    torch_model.load_state_dict(medkern_model.state_dict())
    return medkern_model, torch_model


@pytest.mark.parametrize("in_channels,classes,batch", [(1, 2, 3), (3, 9, 1), (1, 14, 5)])
@pytest.mark.parametrize("name", ["seedcnn", "resnet18"])
def test_output_equals_torch_twin(name, in_channels, classes, batch):
    medkern_model, torch_model = (m.eval() for m in twins(name, in_channels, classes))
    x = torch.randn(batch, in_channels, 28, 28)
    assert_close(medkern_model(x), torch_model(x), op="network")


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
    medkern_model, torch_model = twins(name, 1, 3)
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
    assert_close(out_m, out_t, op="network")
    # gradients in float64: a ReLU input within float32 rounding of zero (a residual add of a
    # ReLU output can land there) takes either branch depending on summation order, changing a
    # gradient by O(1) at that element; in float64 such ties are 1e9 times rarer
    medkern_model.double(), torch_model.double()
    x = x.double()
    medkern_model(x).square().sum().backward()
    torch_model(x).square().sum().backward()
    grads_t = dict(torch_model.named_parameters())
    for key, p in medkern_model.named_parameters():
        assert_close(p.grad, grads_t[key].grad, key, op="network_gradients")


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


@pytest.mark.parametrize("name", ["seedcnn", "resnet18"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_empty_batch_equals_torch_twin(name, mode):
    medkern_model, torch_model = (getattr(m, mode)() for m in twins(name, 1, 3))
    x = torch.randn(0, 1, 28, 28)
    out_m, out_t = medkern_model(x), torch_model(x)
    assert (out_m.shape, out_m.dtype) == (out_t.shape, out_t.dtype)
    out_m.sum().backward()
    out_t.sum().backward()
    grads_t = dict(torch_model.named_parameters())
    for key, p in medkern_model.named_parameters():
        assert_close(p.grad, grads_t[key].grad, key, op="network_gradients")  # zeros: nothing was summed
    for key, value in torch_model.state_dict().items():  # running statistics untouched, batches counted
        assert_close(medkern_model.state_dict()[key], value, key, op="network")
