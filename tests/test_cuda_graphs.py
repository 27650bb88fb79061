"""CUDA-graph training (medkern/train/cuda_graph.py): the argument errors here; on a GPU, a
graphed run ends with the same weights as the eager run of the same batches (the warm-up steps
leave no trace), and medkern train --cuda-graphs trains."""
import copy

import pytest
import torch
import torch.nn.functional as F

import medkern
from medkern.cli import main
from medkern.models import SeedCNN
from medkern.train import GraphedTrainStep, make_capturable_optimizer
from tolerances import assert_close


def test_graphed_step_needs_cuda_tensors_and_a_capturable_optimizer():
    model = SeedCNN(1, 2)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 0, 1])
    adam = make_capturable_optimizer("adam", model.parameters(), 1e-3, 0.0, torch.device("cpu"))
    with pytest.raises(TypeError, match="'model'"):
        GraphedTrainStep("net", adam, F.cross_entropy, x, y)
    with pytest.raises(TypeError, match="'optimizer'"):
        GraphedTrainStep(model, "adam", F.cross_entropy, x, y)
    with pytest.raises(TypeError, match="'example_y'"):
        GraphedTrainStep(model, adam, F.cross_entropy, x, [0, 1])
    with pytest.raises(ValueError, match="'warmup'"):
        GraphedTrainStep(model, adam, F.cross_entropy, x, y, warmup=0)
    with pytest.raises(ValueError, match="capturable=True"):
        GraphedTrainStep(model, torch.optim.Adam(model.parameters()), F.cross_entropy, x, y)
    with pytest.raises(ValueError, match="dampening"):
        GraphedTrainStep(model, torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, dampening=0.1),
                         F.cross_entropy, x, y)
    with pytest.raises(ValueError, match="'example_x' must be on a CUDA device"):
        GraphedTrainStep(model, adam, F.cross_entropy, x, y)


def test_make_capturable_optimizer_rejects_unknown_names():
    with pytest.raises(ValueError, match="'optimizer'"):
        make_capturable_optimizer("lbfgs", SeedCNN(1, 2).parameters(), 1e-3, 0.0, torch.device("cpu"))
    opt = make_capturable_optimizer("adam", SeedCNN(1, 2).parameters(), 1e-3, 0.0, torch.device("cpu"))
    assert opt.defaults["capturable"] and isinstance(opt.param_groups[0]["lr"], torch.Tensor)


def test_train_cli_rejects_cuda_graphs_without_a_gpu(capsys, tmp_path):
    code = main(["train", "--dataset", "pneumoniamnist", "--device", "cpu", "--cuda-graphs", "--epochs", "1",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    # the device is checked before any data is read (no download is attempted)
    assert code == 2 and "--cuda-graphs: needs a CUDA device" in err


def test_train_api_rejects_cuda_graphs_on_the_cpu(breastmnist, tmp_path):
    from medkern.train import TrainConfig, train
    with pytest.raises(ValueError, match="'cuda_graphs'"):
        train(TrainConfig(data=str(breastmnist), epochs=1, device="cpu", cuda_graphs=True, out=str(tmp_path),
                          progress=False))


def test_segmentation_rejects_cuda_graphs(capsys, tmp_path):
    code = main(["train", "--task", "segmentation", "--data", str(tmp_path), "--cuda-graphs"])
    assert code == 2 and "--cuda-graphs" in capsys.readouterr().err


@pytest.mark.cuda
def test_graphed_training_matches_eager_training():
    torch.manual_seed(0)
    reference = medkern.accelerate(torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 3)).cuda(), verbose=False)
    graphed_model = copy.deepcopy(reference)
    batches = [(torch.randn(16, 1, 28, 28, device="cuda"), torch.randint(0, 3, (16,), device="cuda"))
               for _ in range(5)]
    opt_ref = make_capturable_optimizer("adam", reference.parameters(), 1e-2, 0.0, torch.device("cuda"))
    opt_graph = make_capturable_optimizer("adam", graphed_model.parameters(), 1e-2, 0.0, torch.device("cuda"))
    step = GraphedTrainStep(graphed_model, opt_graph, F.cross_entropy, *batches[0])
    for x, y in batches:
        opt_ref.zero_grad(set_to_none=True)
        loss_ref = F.cross_entropy(reference(x), y)
        loss_ref.backward()
        opt_ref.step()
        loss = step(x, y)
        assert_close(loss, loss_ref.detach(), op="network")
    torch.cuda.synchronize()
    for (name, p), (_, p_ref) in zip(graphed_model.named_parameters(), reference.named_parameters()):
        assert_close(p, p_ref, name, op="network")
    for (name, b), (_, b_ref) in zip(graphed_model.named_buffers(), reference.named_buffers()):
        assert_close(b.float(), b_ref.float(), name, op="network")
    with pytest.raises(ValueError, match="'example_y' is on"):
        GraphedTrainStep(graphed_model, opt_graph, F.cross_entropy, batches[0][0], batches[0][1].cpu())
    with pytest.raises(ValueError, match="parameter"):
        GraphedTrainStep(SeedCNN(1, 3), opt_graph, F.cross_entropy, *batches[0])
    with pytest.raises(ValueError, match="captured for"):
        step(torch.randn(3, 1, 28, 28, device="cuda"), torch.zeros(3, dtype=torch.long, device="cuda"))


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_restored_optimizer_steps_like_a_fresh_one(name):
    """The warm-up's state is zeroed in place, not dropped; the next step must equal a fresh
    optimizer's first step (checked on the CPU: the restore is plain tensor work)."""
    from medkern.train.cuda_graph import _restore_optimizer
    torch.manual_seed(0)
    model, x, y = SeedCNN(1, 2), torch.randn(8, 1, 28, 28), torch.randint(0, 2, (8,))
    fresh_model = copy.deepcopy(model)
    make = (lambda params: torch.optim.Adam(params, lr=1e-2)) if name == "adam" else \
        (lambda params: torch.optim.SGD(params, lr=1e-1, momentum=0.9))
    warmed, fresh = make(model.parameters()), make(fresh_model.parameters())
    saved = copy.deepcopy(model.state_dict())
    for _ in range(2):  # the warm-up: creates and advances the state
        warmed.zero_grad()
        F.cross_entropy(model(x), y).backward()
        warmed.step()
    model.load_state_dict(saved)
    _restore_optimizer(warmed, {})
    for m, opt in ((model, warmed), (fresh_model, fresh)):
        for _ in range(2):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
    for (n, p), (_, q) in zip(model.named_parameters(), fresh_model.named_parameters()):
        assert_close(p, q, n, op="network")
