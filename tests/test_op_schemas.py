"""The registered ops' schemas against aten's: every torch.ops.medkern op keeps its aten
counterpart's leading arguments (names and order), so a call written for aten works unchanged,
and arguments medkern adds come after them with defaults. Ops without an aten counterpart are
listed with the reason, so that a new op has to be placed in one table or the other."""
import pytest
import torch

import medkern.ops  # noqa: F401  (registers torch.ops.medkern)
from tolerances import assert_close

# medkern op -> (aten op, number of aten's leading arguments it takes in aten's order)
ATEN_COUNTERPARTS = {
    "conv2d": [("conv2d", 7), ("convolution", 6)],  # convolution's 7th is 'transposed'
    "conv3d": [("conv3d", 7), ("convolution", 6)],
    "conv_transpose2d": [("conv_transpose2d.input", 8)],
    "conv_transpose3d": [("conv_transpose3d.input", 8)],
    "max_pool2d": [("max_pool2d_with_indices", 6)],
    "max_pool2d_values": [("max_pool2d", 6)],
    "max_pool2d_backward": [("max_pool2d_with_indices_backward", 8)],
    "avg_pool2d": [("avg_pool2d", 7)],
    "avg_pool2d_backward": [("avg_pool2d_backward", 8)],
    "max_pool3d": [("max_pool3d_with_indices", 6)],
    "max_pool3d_values": [("max_pool3d", 6)],
    "max_pool3d_backward": [("max_pool3d_with_indices_backward", 8)],
    "avg_pool3d": [("avg_pool3d", 7)],
    "avg_pool3d_backward": [("avg_pool3d_backward", 8)],
    "batch_norm": [("native_batch_norm", 8), ("batch_norm", 8)],
    "batch_norm_backward": [("native_batch_norm_backward", 9)],  # all but output_mask
    "group_norm": [("native_group_norm", 8)],
    "group_norm_backward": [("native_group_norm_backward", 9)],  # all but output_mask
    "linear": [("linear", 3)],
    "relu": [("relu", 1)],
    "relu_": [("relu_", 1)],
    "relu_backward": [("threshold_backward", 2)],
    "leaky_relu": [("leaky_relu", 2)],
    "leaky_relu_backward": [("leaky_relu_backward", 4)],  # aten's relu derivative: threshold_backward(grad, result, 0)
}

NO_ATEN_COUNTERPART = {
    # aten computes the three gradients in one op (convolution_backward / linear_backward with an
    # output_mask); medkern has one op per gradient so that each runs only when it is needed
    "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward_bias",
    "conv3d_backward_input", "conv3d_backward_weight", "conv3d_backward_bias",
    "conv_transpose2d_backward_input", "conv_transpose2d_backward_weight",
    "conv_transpose3d_backward_input", "conv_transpose3d_backward_weight",
    "linear_backward_input", "linear_backward_weight", "linear_backward_bias",
}

# aten's spellings of the same argument: 'self' is the input of a method-style op (relu's
# result in threshold_backward, as its derivative passes it), 'grad_out' and 'train' are
# native_batch_norm_backward's names for what its forward calls grad_output and training
ATEN_ALIASES = {"self": "input", "grad_out": "grad_output", "train": "training"}
ALIASES_PER_OP = {"relu_backward": {"self": "output"}}


def medkern_op_names():
    return sorted(name.partition("::")[2] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("medkern::"))


def aten_schema(name):
    """The schema of aten op ``name`` ('op' for its default overload, 'op.overload' otherwise)."""
    op, _, overload = name.partition(".")
    return getattr(getattr(torch.ops.aten, op), overload or "default")._schema


def argument_names(schema, aliases=None):
    aliases = {**ATEN_ALIASES, **(aliases or {})}
    return [aliases.get(a.name, a.name) for a in schema.arguments]


def test_every_registered_op_is_classified():
    names = set(medkern_op_names())
    classified = set(ATEN_COUNTERPARTS) | NO_ATEN_COUNTERPART
    assert names == classified, f"unclassified: {sorted(names - classified)}, gone: {sorted(classified - names)}"


@pytest.mark.parametrize("name", sorted(ATEN_COUNTERPARTS))
def test_leading_arguments_follow_aten(name):
    ours = getattr(torch.ops.medkern, name).default._schema
    for aten_name, leading in ATEN_COUNTERPARTS[name]:
        theirs = aten_schema(aten_name)
        expected = argument_names(theirs, ALIASES_PER_OP.get(name))[:leading]
        assert argument_names(ours)[:leading] == expected, f"medkern::{name} vs aten::{aten_name}"
    # what medkern adds after aten's arguments has a default, so that aten's call works unchanged
    for a in ours.arguments[max(leading for _, leading in ATEN_COUNTERPARTS[name]):]:
        assert a.has_default_value(), f"medkern::{name}: argument '{a.name}' follows aten's and needs a default"


def test_conv2d_takes_atens_seven_arguments():
    x, w, b = (torch.randn(2, 3, 8, 8, requires_grad=True), torch.randn(4, 3, 3, 3, requires_grad=True),
               torch.randn(4, requires_grad=True))
    torch.library.opcheck(torch.ops.medkern.conv2d.default, (x, w, b, [1, 1], [1, 1], [1, 1], 1))
    assert_close(torch.ops.medkern.conv2d(x, w, b, [1, 1], [1, 1], [1, 1], 1),
                 torch.ops.aten.conv2d(x, w, b, [1, 1], [1, 1], [1, 1], 1), op="conv2d")
