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
    with pytest.raises(TypeError, match="'model'"):
        GraphedTrainStep("net", torch.optim.Adam(model.parameters()), F.cross_entropy, x, y)
    with pytest.raises(TypeError, match="'optimizer'"):
        GraphedTrainStep(model, "adam", F.cross_entropy, x, y)
    with pytest.raises(TypeError, match="'example_y'"):
        GraphedTrainStep(model, torch.optim.Adam(model.parameters()), F.cross_entropy, x, [0, 1])
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA device"):
            GraphedTrainStep(model, torch.optim.Adam(model.parameters()), F.cross_entropy, x, y)
    else:
        with pytest.raises(ValueError, match="'example_x' must be on a CUDA device"):
            GraphedTrainStep(model, torch.optim.Adam(model.parameters()), F.cross_entropy, x, y)
        cuda_model = SeedCNN(1, 2).cuda()
        with pytest.raises(ValueError, match="capturable=True"):
            GraphedTrainStep(cuda_model, torch.optim.Adam(cuda_model.parameters()), F.cross_entropy, x.cuda(),
                             y.cuda())


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
    with pytest.raises(ValueError, match="captured for"):
        step(torch.randn(3, 1, 28, 28, device="cuda"), torch.zeros(3, dtype=torch.long, device="cuda"))
