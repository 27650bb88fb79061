"""Tolerances for comparing medkern with its reference, written down once per dtype.

float32: results are sums of up to a few thousand products computed in a different order
than the reference, so the error grows like sqrt(K) * eps32 * |values|; 1e-4 relative with a
1e-5 absolute floor covers that with margin while still catching any wrong index or term.
float64: the same argument with eps64.
"""
import torch

TOLERANCES = {
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float64: dict(rtol=1e-10, atol=1e-12),
}


def assert_close(actual, expected, msg=""):
    """torch.testing.assert_close with the tolerance of ``expected``'s dtype."""
    tol = TOLERANCES.get(expected.dtype, dict(rtol=0, atol=0))  # integer tensors: exact
    torch.testing.assert_close(actual, expected, **tol, msg=msg or None)
