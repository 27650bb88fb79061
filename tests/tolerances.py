"""Tolerances for comparing medkern with its reference, written down once per dtype and op.

TOLERANCES, per dtype, is the rule for results that are sums of products (convolution, linear,
pooling averages, batch-norm statistics):
float32: results are sums of up to a few thousand products computed in a different order
than the reference, so the error grows like sqrt(K) * eps32 * |values|; 1e-4 relative with a
1e-5 absolute floor covers that with margin while still catching any wrong index or term.
float64: the same argument with eps64.

OP_TOLERANCES names, per op, which rule applies and why; a test names its op, and a name not
in the table is an error rather than a silent default.
"""
import torch

TOLERANCES = {
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float64: dict(rtol=1e-10, atol=1e-12),
}

# no arithmetic at all: the result is one of the input's elements (or zero), bit for bit
EXACT = {torch.float32: dict(rtol=0, atol=0), torch.float64: dict(rtol=0, atol=0)}

OP_TOLERANCES = {
    "conv2d": TOLERANCES,      # sums of C/groups * R * S products (Winograd's transforms stay within it)
    "conv3d": TOLERANCES,      # sums of C/groups * T * R * S products
    "conv_transpose": TOLERANCES,  # the convolution's input gradient: sums of C_in/groups * taps products
    "linear": TOLERANCES,      # sums of in_features products
    "avg_pool2d": TOLERANCES,  # a window's sum times 1/divisor
    "batch_norm": TOLERANCES,  # per-channel mean and variance over N * H * W values
    "max_pool2d": EXACT,       # selects an input element
    "max_pool2d_backward": TOLERANCES,  # an input's gradient sums those of the windows that picked it
    "avg_pool3d": TOLERANCES,  # as avg_pool2d, over a D x H x W window
    "max_pool3d": EXACT,
    "max_pool3d_backward": TOLERANCES,
    "relu": EXACT,             # keeps an input element or writes zero
    "leaky_relu": EXACT,       # x or x * slope: one rounding, the same as torch's
    "group_norm": TOLERANCES,  # per-(sample, group) mean and variance over C / G * spatial values
    "instance_norm": TOLERANCES,
    # a fused norm + activation against the norm then the activation (medkern's or torch's): the
    # same sums; where the pre-activation is within rounding of 0 the masks may differ, which random
    # data does not hit
    "norm_act": TOLERANCES,
    # float32 statistics of values near 1e4 against a float64 reference: a 1e4 offset leaves
    # 1e4 * eps32 ~ 1e-3 of the unit variance, the error a two-pass (or Welford) variance keeps;
    # a one-pass sum-of-squares would lose the variance entirely (error ~1)
    "batch_norm_large_offset": {torch.float32: dict(rtol=0, atol=2e-3)},
    # a whole network's outputs: the per-op rule, a few layers deep, still holds
    "network": TOLERANCES,
    # a whole network's parameter gradients pass through up to 18 layers (and train-mode batch
    # statistics), each summing in its own order: relative 1e-3, and an absolute floor of 1e-4 of
    # the tensor's largest entry (atol_of_max) for entries that are small differences of large ones
    "network_gradients": {torch.float32: dict(rtol=1e-3, atol=1e-7, atol_of_max=1e-4),
                          torch.float64: dict(rtol=1e-8, atol=1e-12, atol_of_max=1e-10)},
}


def tolerance(dtype: torch.dtype, op: str = None) -> dict:
    """rtol / atol (and atol_of_max) for ``op``'s results in ``dtype``; ``op=None`` gives the
    dtype's default. Integer and boolean results (indices, masks) are compared exactly."""
    if not (dtype.is_floating_point or dtype.is_complex):
        return dict(rtol=0, atol=0)
    table = TOLERANCES if op is None else OP_TOLERANCES[op]
    if dtype not in table:
        raise KeyError(f"tests/tolerances.py has no {dtype} tolerance for op '{op}'")
    return table[dtype]


def assert_close(actual, expected, msg="", *, op: str = None, equal_nan: bool = False):
    """torch.testing.assert_close with ``op``'s tolerance for ``expected``'s dtype."""
    tol = dict(tolerance(expected.dtype, op))
    atol_of_max = tol.pop("atol_of_max", 0.0)
    if atol_of_max and expected.numel():
        tol["atol"] += atol_of_max * float(expected.abs().max())
    torch.testing.assert_close(actual, expected, **tol, equal_nan=equal_nan, msg=msg or None)


# ---- preprocessing: medkern.transforms and the fused Pipeline ------------------------------------
# (test_pipeline, test_transforms, test_filter, test_statistics, test_augment.) The kernels compute
# in float32, the oracles (numpy / scipy / torch, float64) in the tests; numpy-style keyword sets.
PREPROCESS_TOLERANCES = {
    # a few point-wise ops (affine, clamp, pow, exp) evaluated in float32: a few ulp of the value
    "pointwise": dict(rtol=2e-6, atol=1e-6),
    # one interpolating resample of O(1) values: float32 source coordinates are off by ~1e-5 px,
    # times the image gradient
    "resample": dict(rtol=1e-4, atol=1e-4),
    # axis-aligned resizing of O(1) values: one float32 multiply-add per source coordinate
    "resize": dict(rtol=1e-5, atol=1e-5),
    # a resample followed by z-score: the same error divided by the image's std (~0.1 here)
    "resample_normalized": dict(rtol=1e-4, atol=1e-3),
    # separable filter passes: a few dozen float32 products of O(1) values per output
    "filter": dict(rtol=1e-5, atol=1e-5),
    # a float16 output of O(1) values: its rounding (2**-11 relative) on top of the float32 result
    "half_output": dict(rtol=2e-3, atol=5e-3),
    # per-image statistics (mean, std, min, max, percentiles) in float64, applied in float32
    "statistics": dict(rtol=1e-6, atol=1e-6),
    # CUDA against the CPU kernels, whole chains ending in a z-score: FMA contraction and another
    # summation order move the coordinates and the statistics by float32 rounding
    "gpu_vs_cpu": dict(rtol=1e-4, atol=1e-3),
    # the same fused kernel on the same sample in another batch (per item, per batch, other
    # workers): identical arithmetic, only the float32 noise of O(100) HU values' last bits
    "rebatched": dict(rtol=0, atol=1e-6),
}
# several interpolating steps fused into one resampling, against the chain resampling at each step:
# on a smooth image they differ by the interpolation error, below this fraction of the value range
PREPROCESS_FUSED_VS_CHAIN = 0.02
# nearest-neighbour labels: where a source coordinate is within float32 rounding of a .5 tie the two
# sides may round differently; at most this fraction of the voxels
PREPROCESS_LABEL_MISMATCH = 2e-3
