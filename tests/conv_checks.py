"""Shared by test_conv3d.py and test_conv_transpose.py: random operands scaled like torch's init
(outputs O(1), so float32 tolerances stay meaningful, never all-zeros) and the check of a medkern
op's values and gradients against torch's in one call."""
import torch

from tolerances import assert_close


def operands(input_shape, weight_shape, bias_size, dtype=torch.float64, device="cpu", fan_in=None):
    """(input, weight, bias) with weight / sqrt(fan_in); bias None when bias_size is None."""
    fan_in = fan_in or weight_shape[1] * int(torch.tensor(weight_shape[2:]).prod())
    x = torch.randn(input_shape, dtype=dtype, device=device)
    w = torch.randn(weight_shape, dtype=dtype, device=device) / fan_in ** 0.5
    b = None if bias_size is None else torch.randn(bias_size, dtype=dtype, device=device)
    return x, w, b


def check_against_torch(ours, theirs, x, w, b, kwargs, op, grad_scale=True):
    """ours(x, w, b, **kwargs) == theirs(...) in values and in the gradients of x, w and b, with
    ``op``'s tolerance. The gradient is scaled so that the weight gradient, a sum over batch and
    voxels, stays O(1)."""
    mine = [t if t is None else t.detach().clone().requires_grad_() for t in (x, w, b)]
    ref = [t if t is None else t.detach().clone().requires_grad_() for t in (x, w, b)]
    out = ours(*mine, **kwargs)
    expected = theirs(*ref, **kwargs)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    assert_close(out, expected, op=op)
    g = torch.randn_like(expected)
    if grad_scale:
        g = g / max(1.0, expected.numel() / expected.shape[1]) ** 0.5
    leaves_mine = [t for t in mine if t is not None]
    leaves_ref = [t for t in ref if t is not None]
    grads = torch.autograd.grad(out, leaves_mine, g)
    grads_ref = torch.autograd.grad(expected, leaves_ref, g)
    for a, e in zip(grads, grads_ref):
        assert a.shape == e.shape
        assert_close(a, e, op=op)
    return out
