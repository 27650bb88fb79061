"""Zero-size tensors through every op and module, with torch as the reference: an empty batch
(N = 0), and the empty channel, spatial and feature axes that torch accepts, give torch's values,
shapes, dtypes and gradients (zeros for weights and biases: nothing was summed into them) and
leave running statistics as torch leaves them; where torch raises, medkern raises the same
error. The registered ops' fake kernels agree with their implementations on empty inputs
(opcheck). Non-empty operands (weights, biases, statistics) hold random non-zero values."""
import copy

import pytest
import torch
import torch.nn.functional as F

import medkern
import medkern.nn
from medkern import ops
from tolerances import assert_close

DTYPES = [torch.float32, torch.float64]


def randn(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype) + 0.1  # never exactly zero


def copies(args, differentiable):
    """Fresh copies of ``args``; those at the ``differentiable`` positions are leaves requiring grad."""
    return [a.detach().clone().requires_grad_(i in differentiable) if isinstance(a, torch.Tensor) else a
            for i, a in enumerate(args)]


def as_tuple(output):
    return output if isinstance(output, tuple) else (output,)


def check_like_torch(ours, theirs, args, op, differentiable=(0,)):
    """``ours(*args)`` does what ``theirs(*args)`` does, without and with autograd: an error
    (torch's type, or medkern's ValueError / RuntimeError), or the same outputs (shape, dtype,
    values), the same tensor arguments afterwards (running statistics) and the same gradients
    for the ``differentiable`` arguments."""
    for grad_positions in ((), differentiable):
        mine, ref = copies(args, grad_positions), copies(args, grad_positions)
        try:
            expected = as_tuple(theirs(*ref))
        except (RuntimeError, ValueError, IndexError) as error:
            with pytest.raises((type(error), RuntimeError, ValueError)):  # medkern's own checks raise ValueError
                ours(*mine)
            return
        actual = as_tuple(ours(*mine))
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert (a.shape, a.dtype) == (e.shape, e.dtype)
            assert_close(a, e, op=op)
        for i, (a, e) in enumerate(zip(mine, ref)):
            if isinstance(e, torch.Tensor) and i not in grad_positions:
                assert_close(a, e, f"argument {i} after the call", op=op)
        if not grad_positions:
            continue
        differentiable_actual = [o for o in actual if o.requires_grad]
        differentiable_expected = [o for o in expected if o.requires_grad]
        assert len(differentiable_actual) == len(differentiable_expected) > 0
        grad_outputs = [randn(*o.shape, dtype=o.dtype) for o in differentiable_expected]
        leaves_mine = [mine[i] for i in grad_positions if mine[i] is not None]
        leaves_ref = [ref[i] for i in grad_positions if ref[i] is not None]
        grads = torch.autograd.grad(differentiable_actual, leaves_mine, grad_outputs)
        grads_ref = torch.autograd.grad(differentiable_expected, leaves_ref, grad_outputs)
        for g, e, leaf in zip(grads, grads_ref, leaves_ref):
            assert (g.shape, g.dtype) == (e.shape, e.dtype) == (leaf.shape, leaf.dtype)
            assert_close(g, e, op=op)


# ---- conv2d ------------------------------------------------------------------------------------

# (input shape, weight shape, keyword arguments); torch accepts N = 0 and C = 0 (its result then
# has no channels at all) and refuses K = 0, an empty spatial axis and mismatched channels
CONV_CASES = [
    ((0, 3, 8, 8), (4, 3, 3, 3), dict(padding=1)),
    ((0, 4, 9, 7), (6, 2, 3, 1), dict(stride=(2, 1), padding=(0, 1), dilation=(2, 1), groups=2)),
    ((0, 1, 5, 5), (8, 1, 3, 3), dict()),
    ((0, 3, 8, 9), (4, 3, 4, 2), dict(padding="same")),
    ((2, 0, 8, 8), (4, 0, 3, 3), dict(padding=1)),
    ((2, 0, 8, 8), (4, 0, 3, 3), dict(groups=2)),
    ((0, 8, 8), (4, 0, 3, 3), dict()),              # unbatched with no channels
    ((2, 3, 8, 8), (0, 3, 3, 3), dict()),           # raises: no output channels
    ((2, 3, 0, 8), (4, 3, 3, 3), dict(padding=1)),  # raises: empty spatial axis
    ((0, 3, 8, 8), (4, 2, 3, 3), dict()),           # raises: channel mismatch
    ((0, 3, 2, 2), (4, 3, 3, 3), dict()),           # raises: kernel larger than the input
]


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("fuse_relu", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_like_torch(dtype, fuse_relu):
    ours = ops.conv2d_relu if fuse_relu else ops.conv2d

    def theirs(*args, **kwargs):
        out = F.conv2d(*args, **kwargs)
        return F.relu(out) if fuse_relu else out

    for x_shape, w_shape, kwargs in CONV_CASES:
        args = (randn(*x_shape, dtype=dtype), randn(*w_shape, dtype=dtype), randn(w_shape[0], dtype=dtype))
        check_like_torch(lambda *a: ours(*a, **kwargs), lambda *a: theirs(*a, **kwargs), args, "conv2d",
                         differentiable=(0, 1, 2))


# ---- pooling -----------------------------------------------------------------------------------

# torch accepts an empty batch only: no channels or an empty spatial axis raise
POOL_SHAPES = [(0, 3, 8, 8), (0, 2, 9, 7), (2, 0, 8, 8), (2, 3, 0, 8), (0, 8, 8), (0, 3, 1, 1)]


POOL_KWARGS = {
    "max_pool2d": [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                   dict(kernel_size=(2, 3), dilation=2), dict(kernel_size=2, return_indices=True)],
    "avg_pool2d": [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                   dict(kernel_size=(3, 2), padding=1, count_include_pad=False, divisor_override=5)],
}


# the same for 3-D pooling: (N, C, D, H, W) inputs and (C, D, H, W) unbatched ones
POOL3D_SHAPES = [(0, 3, 6, 8, 8), (0, 2, 5, 9, 7), (2, 0, 6, 8, 8), (2, 3, 6, 0, 8), (0, 6, 8, 8), (0, 3, 1, 1, 1)]
POOL3D_KWARGS = {
    "max_pool3d": [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                   dict(kernel_size=(1, 2, 3), dilation=2), dict(kernel_size=2, return_indices=True)],
    "avg_pool3d": [dict(kernel_size=2), dict(kernel_size=(1, 3, 3), stride=2, padding=(0, 1, 1), ceil_mode=True),
                   dict(kernel_size=(1, 3, 2), padding=(0, 1, 1), count_include_pad=False, divisor_override=5)],
}


@pytest.mark.parametrize("op", sorted(POOL_KWARGS) + sorted(POOL3D_KWARGS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_like_torch(op, dtype):
    ours, theirs = getattr(ops, op), getattr(F, op)
    shapes, kwargs_list = (POOL_SHAPES, POOL_KWARGS) if op in POOL_KWARGS else (POOL3D_SHAPES, POOL3D_KWARGS)
    for shape in shapes:
        for kwargs in kwargs_list[op]:
            check_like_torch(lambda x: ours(x, **kwargs), lambda x: theirs(x, **kwargs),
                             (randn(*shape, dtype=dtype),), op)


# ---- batch norm --------------------------------------------------------------------------------

# (input shape, channels of the parameters and statistics); in training torch wants more than one
# value per channel, but an empty input has none and is accepted (its running statistics stay)
BN_SHAPES = [((0, 3), 3), ((0, 3, 4, 4), 3), ((0, 3, 2, 3, 4), 3), ((2, 3, 0, 4), 3), ((2, 0, 4, 4), 0),
             ((1, 3), 3), ((1, 3, 1, 1), 3)]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_like_torch(dtype, training):
    for shape, c in BN_SHAPES:
        x, w, b = randn(*shape, dtype=dtype), randn(c, dtype=dtype), randn(c, dtype=dtype)
        rm, rv = randn(c, dtype=dtype), torch.rand(c, dtype=dtype) + 0.5
        for args in ((x, rm, rv, w, b), (x, rm, rv, None, None), (x, None, None, w, b)):
            check_like_torch(lambda *a: ops.batch_norm(*a, training, 0.3, 1e-3),
                             lambda *a: F.batch_norm(*a, training, 0.3, 1e-3), args, "batch_norm",
                             differentiable=(0, 3, 4))


def test_batch_norm_rejects_one_value_per_channel_in_training_as_torch_does():
    for shape in [(1, 3), (1, 3, 1, 1)]:
        x = randn(*shape)
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            F.batch_norm(x, None, None, training=True)
        with pytest.raises(ValueError, match="'input'.*more than 1 value per channel"):
            ops.batch_norm(x, None, None, training=True)
    # an empty batch has no value per channel at all, and torch accepts it: so does medkern
    x = randn(0, 3)
    assert_close(ops.batch_norm(x, None, None, training=True), F.batch_norm(x, None, None, training=True),
                 op="batch_norm")


# ---- linear ------------------------------------------------------------------------------------

# (input shape, weight shape): empty rows, no input features (the output is the bias), no
# output features, empty leading axes, and a 1-D input with no features
LINEAR_CASES = [((0, 5), (4, 5)), ((3, 0), (4, 0)), ((3, 5), (0, 5)), ((2, 0, 5), (4, 5)), ((0, 2, 5), (4, 5)),
                ((0,), (4, 0)), ((0, 5), (4, 6))]  # the last raises: feature mismatch


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_like_torch(dtype, bias):
    for x_shape, w_shape in LINEAR_CASES:
        args = (randn(*x_shape, dtype=dtype), randn(*w_shape, dtype=dtype),
                randn(w_shape[0], dtype=dtype) if bias else None)
        check_like_torch(ops.linear, F.linear, args, "linear", differentiable=(0, 1, 2))


# ---- relu --------------------------------------------------------------------------------------

RELU_INPUTS = [lambda: randn(0, 3), lambda: randn(2, 0, 4), lambda: randn(0), lambda: randn(0, 3).t(),
               lambda: randn(0, 3, 4, 4)[:, :, ::2]]


@pytest.mark.parametrize("inplace", [False, True])
def test_relu_like_torch(inplace):
    for make in RELU_INPUTS:
        # in place on a non-leaf copy (x * 1), as autograd requires of torch's relu_ too
        check_like_torch(lambda x: ops.relu(x * 1, inplace=inplace), lambda x: F.relu(x * 1, inplace=inplace),
                         (make(),), "relu")


# ---- the registered ops' fake kernels on empty inputs ----------------------------------------


def leaves(*tensors):
    """Copies requiring grad: opcheck then also differentiates an op with an autograd formula."""
    return copies(tensors, range(len(tensors)))


def _empty_op_samples(family):
    """(op, arguments) for each registered op of ``family``, on empty inputs."""
    m = torch.ops.medkern
    x, w = randn(0, 3, 8, 8), randn(4, 3, 3, 3)
    conv = [[1, 1], [1, 1], [1, 1], 1]
    pool = [[2, 2], [2, 2], [0, 0], [1, 1], False]
    avg = [[2, 2], [2, 2], [0, 0], False, True, None]
    no_indices = torch.zeros(0, 3, 4, 4, dtype=torch.int64)
    x3 = randn(0, 3, 4, 8, 8)
    no_indices3 = torch.zeros(0, 3, 2, 4, 4, dtype=torch.int64)
    pool3 = [[2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False]
    avg3 = [[2, 2, 2], [2, 2, 2], [0, 0, 0], False, True, None]
    stats = [randn(3), torch.rand(3) + 0.5]
    samples = {
        "conv2d": [
            (m.conv2d, leaves(x, w, randn(4)) + conv),
            (m.conv2d, leaves(randn(2, 0, 8, 8), randn(4, 0, 3, 3)) + [None] + conv + [True]),
            (m.conv2d_backward_input, [randn(0, 4, 8, 8), w, [0, 3, 8, 8]] + conv),
            (m.conv2d_backward_weight, [randn(0, 4, 8, 8), x, [4, 3, 3, 3]] + conv),
            (m.conv2d_backward_bias, [randn(0, 4, 8, 8)]),
        ],
        "pooling": [
            (m.max_pool2d, leaves(x) + pool),
            (m.max_pool2d_values, [x] + pool),
            (m.max_pool2d_backward, [randn(0, 3, 4, 4), x] + pool + [no_indices]),
            (m.avg_pool2d, leaves(x) + avg),
            (m.avg_pool2d_backward, leaves(randn(0, 3, 4, 4), x) + avg),
            (m.max_pool3d, leaves(x3) + pool3),
            (m.max_pool3d_values, [x3] + pool3),
            (m.max_pool3d_backward, [randn(0, 3, 2, 4, 4), x3] + pool3 + [no_indices3]),
            (m.avg_pool3d, leaves(x3) + avg3),
            (m.avg_pool3d_backward, leaves(randn(0, 3, 2, 4, 4), x3) + avg3),
        ],
        "batch_norm": [  # mutates its running statistics: no autograd formula, no grads
            (m.batch_norm, [x, randn(3), randn(3)] + stats + [True, 0.1, 1e-5]),
            (m.batch_norm, [x, None, None] + stats + [False, 0.1, 1e-5]),
            (m.batch_norm_backward, [randn(0, 3, 8, 8), x, randn(3)] + stats + [randn(3), randn(3), True, 1e-5]),
        ],
        "linear": [
            (m.linear, leaves(randn(0, 5), randn(4, 5), randn(4))),
            (m.linear, leaves(randn(3, 0), randn(4, 0), randn(4))),
            (m.linear, leaves(randn(3, 5), randn(0, 5), randn(0))),
            (m.linear_backward_input, [randn(3, 4), randn(4, 0)]),
            (m.linear_backward_weight, [randn(3, 4), randn(3, 0)]),
            (m.linear_backward_bias, [randn(0, 4)]),
        ],
        "relu": [
            (m.relu, leaves(randn(2, 0, 4))),
            (m.relu_, [randn(2, 0, 4)]),
            (m.relu_backward, leaves(randn(2, 0, 4), randn(2, 0, 4))),
        ],
    }
    return samples[family]


@pytest.mark.parametrize("family", ["conv2d", "pooling", "batch_norm", "linear", "relu"])
def test_opcheck_on_empty_inputs(family):
    for op, args in _empty_op_samples(family):
        torch.library.opcheck(op.default, args)


def test_backward_ops_reject_a_grad_output_of_another_shape():
    """An empty operand runs torch's backward kernel, and aten's avg-pool and batch-norm backward
    kernels crash the interpreter on a grad_output of the wrong shape; the op raises instead."""
    m = torch.ops.medkern
    stats = [torch.zeros(3), torch.ones(3)]
    for grad_output, input in [(randn(0, 3, 2, 2), randn(2, 3, 4, 4)), (randn(2, 3, 2, 2), randn(0, 3, 4, 4))]:
        with pytest.raises(ValueError, match="'grad_output' has shape"):
            m.avg_pool2d_backward(grad_output, input, [2, 2], [2, 2], [0, 0], False, True, None)
    for grad_output, input in [(randn(0, 3, 4, 4), randn(2, 3, 4, 4)), (randn(2, 3, 4, 4), randn(0, 3, 4, 4))]:
        with pytest.raises(ValueError, match="'grad_output' has shape"):
            m.batch_norm_backward(grad_output, input, None, None, None, *stats, True, 1e-5)


# ---- modules and a whole network ------------------------------------------------------------


def _module_pairs():
    """(medkern module, torch module with the same state) for every medkern.nn layer."""
    return [
        (medkern.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1)),
        (medkern.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
         torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")),
        (medkern.nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
        (medkern.nn.AvgPool2d(2, ceil_mode=True), torch.nn.AvgPool2d(2, ceil_mode=True)),
        (medkern.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)),
        (medkern.nn.BatchNorm2d(3, momentum=None), torch.nn.BatchNorm2d(3, momentum=None)),
        (medkern.nn.ReLU(), torch.nn.ReLU()),
        (medkern.nn.Linear(8, 5), torch.nn.Linear(8, 5)),
    ]


@pytest.mark.parametrize("training", [True, False])
def test_modules_like_torch(training):
    for ours, theirs in _module_pairs():
        with torch.no_grad():
            for t in theirs.parameters():
                t.uniform_(0.5, 1.5)
        ours.load_state_dict(theirs.state_dict())
        ours.train(training), theirs.train(training)
        x = randn(0, 8) if isinstance(theirs, torch.nn.Linear) else randn(0, 3, 8, 8)
        check_like_torch(ours, theirs, (x,), "network")
        for key, value in theirs.state_dict().items():  # running statistics, num_batches_tracked
            assert_close(ours.state_dict()[key], value, key, op="network")


def test_accelerated_network_like_torch():
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(inplace=True),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 6, 3), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(6, 3))
    model = medkern.accelerate(copy.deepcopy(reference))
    assert model.medkern_report["kept"] == {}
    for training in (True, False):
        model.train(training), reference.train(training)
        x = randn(0, 1, 10, 10).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        out, ref = model(x), reference(x_ref)
        assert_close(out, ref, op="network")
        out.sum().backward()
        ref.sum().backward()
        assert_close(x.grad, x_ref.grad, op="network")
        for (name, p), (_, p_ref) in zip(model.named_parameters(), reference.named_parameters()):
            assert_close(p.grad, p_ref.grad, name, op="network")
