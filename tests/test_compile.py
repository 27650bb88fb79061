"""torch.compile composes with medkern: ``torch.compile(medkern.accelerate(model), fullgraph=True)``
traces every medkern op (registered custom ops with fake kernels and autograd formulas: no
graph break), trains and infers, and gives the eager model's outputs and gradients."""
import copy

import pytest
import torch
import torch.nn.functional as F

import medkern
from medkern.models import SeedCNN, UNet, resnet18_28
from tolerances import assert_close

MODELS = {
    "seedcnn": (lambda: SeedCNN(1, 2, layers="torch"), (4, 1, 28, 28)),
    "resnet18": (lambda: resnet18_28(1, 2, layers="torch"), (2, 1, 28, 28)),
    "unet3d": (lambda: UNet(3, 1, 2, features=(4, 8), layers="torch"), (2, 1, 8, 8, 8)),
}


def reference_and_accelerated(name, dtype=torch.float64):
    """float64 by default: the deep networks' gradients sum enough float32 terms in a different
    order to leave small entries beyond float32's tolerance."""
    torch.manual_seed(0)
    build, shape = MODELS[name]
    reference = build().to(dtype)
    return reference, medkern.accelerate(copy.deepcopy(reference), verbose=False), torch.randn(shape, dtype=dtype)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiled_accelerated_model_trains_like_eager(name):
    reference, model, x = reference_and_accelerated(name)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # fullgraph: a graph break raises
    out, out_ref = compiled(x), reference(x)
    assert_close(out, out_ref, op="network")
    grad = torch.randn_like(out_ref)
    out.backward(grad)
    out_ref.backward(grad)
    for (n, p), (_, p_ref) in zip(model.named_parameters(), reference.named_parameters()):
        assert_close(p.grad, p_ref.grad, n, op="network")
    # inference: the eval path (folded BatchNorms are computed in the graph, not cached)
    model.eval()
    reference.eval()
    with torch.no_grad():
        assert_close(compiled(x), reference(x), op="network")


def test_inductor_compiles_an_accelerated_training_step():
    reference, model, x = reference_and_accelerated("seedcnn", torch.float32)
    y = torch.tensor([0, 1, 1, 0])
    compiled = torch.compile(model, fullgraph=True)  # the default backend, inductor
    loss = F.cross_entropy(compiled(x), y)
    loss_ref = F.cross_entropy(reference(x), y)
    assert_close(loss, loss_ref, op="network")
    loss.backward()
    loss_ref.backward()
    assert_close(model.conv1.weight.grad, reference.conv1.weight.grad, op="network")
