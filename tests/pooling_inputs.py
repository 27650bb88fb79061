"""Inputs and gradient checks shared by the 2-D and 3-D pooling tests: tensors of distinct values
(so a window's max and its index are unique and must match torch exactly), the layouts an op must
accept, and gradcheck runs over a case tuple of either op."""
import torch


def distinct(shape, dtype, requires_grad=False):
    """A shuffled ramp in (-0.5, 0.5): distinct values, none of them zero."""
    n = 1
    for s in shape:
        n *= s
    x = (torch.randperm(n, dtype=torch.float64) + 0.5) / max(n, 1) - 0.5
    return x.reshape(shape).to(dtype).requires_grad_(requires_grad)


def layouts(x):
    """The same values as a dense tensor, a W-strided slice, a view with the first and last spatial
    dims transposed, and channels-last (2-D or 3-D)."""
    yield "dense", x
    wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    wide[..., ::2] = x
    yield "w_stride_2", wide[..., ::2]
    yield "transposed", x.transpose(2, -1).contiguous().transpose(2, -1)
    fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    yield "channels_last", x.contiguous(memory_format=fmt)


def gradcheck_max(max_pool, case):
    """gradcheck of ``max_pool`` on a MAX_CASES tuple (shape, kernel, stride, padding, dilation, ceil)."""
    shape, k, s, p, d, ceil = case
    x = distinct(shape, torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: max_pool(t, k, s, p, d, ceil), (x,))


def gradcheck_avg(avg_pool, case):
    """gradcheck and gradgradcheck of ``avg_pool`` on an AVG_CASES tuple (shape, kernel, stride,
    padding, ceil, count_include_pad, divisor_override)."""
    shape, k, s, p, ceil, cip, div = case
    x = distinct(shape, torch.float64, requires_grad=True)
    fn = lambda t: avg_pool(t, k, s, p, ceil, cip, div)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
