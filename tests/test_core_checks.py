"""Argument checks of the device-neutral core (csrc/core, csrc/include/medkern/checks.h) that
guard memory safety rather than shapes: an output must not share memory with what the kernel
still reads. Overlap is decided on byte ranges, not base pointers, so a shifted view of the same
buffer is caught; disjoint views of one buffer stay legal, and element-wise ops may still write
in place. Also Philox's argument checks."""
from __future__ import annotations

import numpy as np
import pytest

from medkern._backend import _C, view

RNG = np.random.default_rng(77)


def shared_buffer(size=256):
    return RNG.uniform(0.5, 2.0, size).astype(np.float32)


# ---- Philox -----------------------------------------------------------------------------------
def test_philox_normal_rejects_a_negative_count():
    with pytest.raises(ValueError, match="'count' must be >= 0, got -1"):
        _C.philox_normal(1, 0, 0, -1)


def test_philox_normal_rejects_a_negative_sample():
    # as philox_uniform does: a negative sample would wrap to a huge key and replay nothing
    with pytest.raises(ValueError, match="'sample' must be >= 0, got -2"):
        _C.philox_normal(1, -2, 0, 4)


# ---- filter_axis ------------------------------------------------------------------------------
def run_filter(x, out, indices=None, weights=None, axis=0):
    length = x.shape[2 + axis]
    if indices is None:  # a 3-tap blur: each output reads its neighbours
        indices = np.stack([np.arange(length) - 1, np.arange(length), np.arange(length) + 1], 1).astype(np.int64)
        weights = np.full(indices.shape, 1 / 3, np.float32)
    _C.filter_axis(view(x, "input"), view(indices, "indices"), view(weights, "weights"), view(out, "output"), axis, 0)


def filter_reference(x, axis=0):
    out = np.empty_like(x)
    run_filter(x.copy(), out, axis=axis)
    return out


def test_filter_rejects_an_output_shifted_one_row_into_the_input():
    buf = shared_buffer()
    x = buf[:48].reshape(1, 1, 6, 8)
    out = buf[8:56].reshape(1, 1, 6, 8)  # contiguous, another start pointer, 40 elements shared
    with pytest.raises(ValueError, match=r"'output' \(shape \(1, 1, 6, 8\)\) overlaps the memory of 'input'"):
        run_filter(x, out)


def test_filter_rejects_an_output_that_ends_inside_the_input():
    buf = shared_buffer()
    x = buf[40:88].reshape(1, 1, 6, 8)
    out = buf[:48].reshape(1, 1, 6, 8)  # starts before the input, last row is the input's first
    with pytest.raises(ValueError, match="'output'.*overlaps.*'input'"):
        run_filter(x, out)


def test_filter_overlap_counts_negative_strides():
    buf = shared_buffer()
    x = buf[:48].reshape(1, 1, 6, 8)[:, :, ::-1]  # data pointer at the last row; reaches down to buf[0]
    out = buf[48:96].reshape(1, 1, 6, 8)
    expected = filter_reference(np.ascontiguousarray(x))
    run_filter(x, out)  # disjoint: accepted
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="'output'.*overlaps.*'input'"):
        run_filter(x, buf[40:88].reshape(1, 1, 6, 8))


def test_filter_accepts_disjoint_views_of_one_buffer():
    buf = shared_buffer()
    x, out = buf[:48].reshape(1, 1, 6, 8), buf[48:96].reshape(1, 1, 6, 8)
    expected = filter_reference(x)
    run_filter(x, out)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # and the output just below the input
    x2, out2 = buf[48:96].reshape(1, 1, 6, 8), buf[:48].reshape(1, 1, 6, 8)
    expected2 = filter_reference(x2)
    run_filter(x2, out2)
    np.testing.assert_allclose(out2, expected2, rtol=1e-6)


def test_filter_rejects_an_output_over_its_weights():
    buf = shared_buffer()
    x = RNG.uniform(0.5, 2.0, (1, 1, 4, 4)).astype(np.float32)
    weights = buf[:12].reshape(4, 3)
    indices = np.tile(np.arange(3, dtype=np.int64), (4, 1))
    with pytest.raises(ValueError, match="'output'.*overlaps.*'weights'"):
        run_filter(x, buf[8:24].reshape(1, 1, 4, 4), indices, weights)


# ---- resample_intensity -----------------------------------------------------------------------
def run_resample(x, out):
    n = x.shape[0]
    matrices = np.tile(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]]), (n, 1, 1))
    empty_ops = np.zeros((n, 0, 4), np.float32)
    _C.resample_intensity(view(x), view(matrices, "matrices"), view(np.arange(n, dtype=np.int64)), view(empty_ops),
                          view(empty_ops), view(out, "output"), _C.INTERPOLATION_CODES["linear"],
                          _C.PADDING_CODES["border"], 0)


def test_resample_rejects_an_output_overlapping_its_input():
    buf = shared_buffer()
    x = buf[:48].reshape(1, 1, 6, 8)
    with pytest.raises(ValueError, match="'output'.*overlaps the memory of 'input'"):
        run_resample(x, buf[1:49].reshape(1, 1, 6, 8))
    with pytest.raises(ValueError, match="'output'.*overlaps the memory of 'input'"):
        run_resample(x, x)  # the resampler gathers: not even in place


def test_resample_accepts_disjoint_views_of_one_buffer():
    buf = shared_buffer()
    x = buf[:48].reshape(1, 1, 6, 8)
    expected = np.empty_like(x)
    run_resample(x.copy(), expected)
    out = buf[48:96].reshape(1, 1, 6, 8)
    run_resample(x, out)
    np.testing.assert_array_equal(out, expected)


# ---- normalize_intensity ----------------------------------------------------------------------
def run_normalize(x, out, mask=None, workspace=None):
    _C.normalize_intensity(view(x), None if mask is None else view(mask, "mask"), view(out, "output"),
                           _C.NORMALIZE_KIND_CODES["zscore"], False, 0.0,
                           workspace=None if workspace is None else view(workspace, "workspace"))


def test_normalize_in_place_is_allowed():
    x = RNG.uniform(0, 5, (2, 1, 4, 6)).astype(np.float32)
    expected = np.empty_like(x)
    run_normalize(x.copy(), expected)
    run_normalize(x, x)
    np.testing.assert_allclose(x, expected, rtol=1e-6)


def test_normalize_rejects_a_shifted_output():
    buf = shared_buffer()
    x = buf[:48].reshape(2, 1, 4, 6)
    with pytest.raises(ValueError, match="'output'.*overlaps the memory of 'input'"):
        run_normalize(x, buf[6:54].reshape(2, 1, 4, 6))


def test_normalize_rejects_an_output_over_its_mask():
    x = RNG.uniform(0, 5, (1, 1, 4, 4)).astype(np.float32)
    raw = np.ones(128, np.uint8)
    mask = raw[:16].reshape(1, 1, 4, 4)
    out = raw[8:72].view(np.float32).reshape(1, 1, 4, 4)  # 64 bytes from byte 8: over the mask's last 8
    with pytest.raises(ValueError, match="'output'.*overlaps the memory of 'mask'"):
        run_normalize(x, out, mask=mask)


def test_normalize_rejects_a_workspace_over_its_input():
    buf = shared_buffer()
    x = buf[:48].reshape(2, 1, 4, 6)
    with pytest.raises(ValueError, match="'workspace'.*overlaps the memory of 'input'"):
        run_normalize(x, np.empty_like(x), workspace=buf[40:80])


def test_normalize_accepts_disjoint_views_of_one_buffer():
    buf = shared_buffer()
    x, out = buf[:48].reshape(2, 1, 4, 6), buf[48:96].reshape(2, 1, 4, 6)
    expected = np.empty_like(x)
    run_normalize(x.copy(), expected)
    run_normalize(x, out)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


# ---- relu_forward -----------------------------------------------------------------------------
def test_relu_in_place_is_allowed_and_a_shifted_output_is_not():
    buf = RNG.normal(size=64).astype(np.float32)
    x = buf[:32].reshape(4, 8)
    expected = np.maximum(x, 0)
    _C.relu_forward(view(x), view(x))
    np.testing.assert_array_equal(x, expected)
    with pytest.raises(ValueError, match="'output'.*overlaps the memory of 'input'"):
        _C.relu_forward(view(buf[:32].reshape(4, 8)), view(buf[4:36].reshape(4, 8)))
    out = buf[32:64].reshape(4, 8)
    _C.relu_forward(view(x), view(out))  # disjoint halves of one buffer
    np.testing.assert_array_equal(out, expected)
