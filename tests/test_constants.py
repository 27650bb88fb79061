"""The facts Python and C++ share (dtype codes, padding / interpolation modes, intensity ops,
normalization kinds, the bias field's term packing, kernel op names) are written once, in C++,
and exported from _C. Here: the exported tables are the ones Python uses (the very objects),
every code or name Python passes exists in _C, and each code means in the kernels what its name
says (checked on small inputs against values written out by hand)."""
from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest
import torch

import medkern
from medkern import _backend
from medkern._backend import _C, view
from medkern.transforms import base, intensity

PACKAGE = pathlib.Path(medkern.__file__).parent

CODE_TABLES = {
    "DTYPE_CODES": ("float32", "float64", "float16", "bfloat16", "uint8", "int8", "int16", "uint16", "int32",
                    "int64", "bool"),
    "INTERPOLATION_CODES": ("nearest", "linear"),
    "PADDING_CODES": ("zeros", "border", "reflect"),
    "INTENSITY_OP_CODES": ("affine", "clamp", "power", "noise", "bias_term", "bias_apply"),
    "NORMALIZE_KIND_CODES": ("zscore", "minmax", "percentile"),
    "ACTIVATION_CODES": ("identity", "relu", "leaky_relu"),
}


# ---- the contract: names and shapes of the exported constants ---------------------------------
@pytest.mark.parametrize("table,names", CODE_TABLES.items())
def test_code_tables_name_every_enum_value_once(table, names):
    codes = getattr(_C, table)
    assert set(codes) == set(names)
    # codes run 0, 1, ... in enum order (the C++ side walks them so; a gap would end the table)
    assert sorted(codes.values()) == list(range(len(codes)))


def test_bias_field_packing_constants():
    assert isinstance(_C.BIAS_FIELD_MAX_ORDER, int) and _C.BIAS_FIELD_MAX_ORDER >= 1
    weights = _C.BIAS_FIELD_EXPONENT_WEIGHTS
    assert len(weights) == 3  # (z, y, x)
    # unambiguous packing: each exponent field holds 0..max order without reaching the next
    assert weights[2] == 1
    assert weights[1] > _C.BIAS_FIELD_MAX_ORDER * weights[2]
    assert weights[0] > _C.BIAS_FIELD_MAX_ORDER * weights[1] + _C.BIAS_FIELD_MAX_ORDER * weights[2]


def test_kernel_op_names_are_unique_functions_of_c():
    names = _C.KERNEL_OP_NAMES
    assert isinstance(names, tuple) and len(names) == len(set(names))
    assert all(callable(getattr(_C, name, None)) for name in names)
    assert set(_C.build_info()["cuda_ops"]) <= set(names)


# ---- Python reads the C++ tables instead of typing them again ---------------------------------
def test_python_tables_are_the_exported_objects():
    assert _backend.DTYPE_CODES is _C.DTYPE_CODES
    assert base.PADDING_CODES is _C.PADDING_CODES
    assert base.MODE_CODES is _C.INTERPOLATION_CODES


def test_intensity_op_and_normalize_codes_come_from_c():
    ops = _C.INTENSITY_OP_CODES
    assert (intensity.AFFINE, intensity.CLAMP, intensity.POWER, intensity.NOISE, intensity.BIAS_TERM,
            intensity.BIAS_APPLY) == (ops["affine"], ops["clamp"], ops["power"], ops["noise"], ops["bias_term"],
                                      ops["bias_apply"])
    kinds = _C.NORMALIZE_KIND_CODES
    assert intensity.ZScore.code == kinds["zscore"]
    assert intensity.MinMax.code == kinds["minmax"]
    assert intensity.PercentileClip.code == kinds["percentile"]
    assert intensity.BiasField.MAX_ORDER == _C.BIAS_FIELD_MAX_ORDER


def test_bias_field_ops_pack_exponents_with_the_exported_weights():
    t = intensity.BiasField(coefficients=0.3, order=2)
    u = np.linspace(0.05, 0.95, t.draws)
    ops, params = t.sample_ops(u, 0, 3)
    weights = _C.BIAS_FIELD_EXPONENT_WEIGHTS
    assert [op[0] for op in ops] == [intensity.BIAS_TERM] * len(params["exponents"]) + [intensity.BIAS_APPLY]
    for op, (ez, ey, ex) in zip(ops, params["exponents"]):
        assert op[2] == ez * weights[0] + ey * weights[1] + ex * weights[2]


def _string_arguments(path: pathlib.Path, functions: set) -> list:
    """The string literals passed as any argument to a call of one of ``functions`` (by name or
    attribute), with their line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name in functions:
            found += [(a.value, node.lineno) for a in node.args
                      if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return found


# the calls that take a kernel op name (ops/_eager.py's uses_torch_kernel passes its on)
FALLBACK_CHECKS = {"needs_torch_fallback", "has_cuda_kernel", "warn_fallback_once", "uses_torch_kernel"}


def test_every_op_name_the_ops_ask_about_is_a_kernel_op():
    asked = []
    for path in sorted((PACKAGE / "ops").glob("*.py")):
        asked += [(path.name, line, op) for op, line in _string_arguments(path, FALLBACK_CHECKS)]
    assert asked, "the scan found no op names: has the fallback check been renamed?"
    unknown = [a for a in asked if a[2] not in _C.KERNEL_OP_NAMES]
    assert not unknown, f"op names not in _C.KERNEL_OP_NAMES (file, line, name): {unknown}"


def test_every_c_attribute_python_uses_exists():
    used = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "_C":
                used.add((path.relative_to(PACKAGE).as_posix(), node.attr))
    missing = sorted((where, name) for where, name in used if not hasattr(_C, name))
    assert not missing, f"_C has no attribute for: {missing}"


# ---- each code means what its name says ---------------------------------------------------------
@pytest.mark.parametrize("name", CODE_TABLES["DTYPE_CODES"])
def test_dtype_codes_round_trip_through_tensor_view(name):
    assert _C.TensorView(0, _C.DTYPE_CODES[name], [2, 3], [3, 1]).dtype == name


@pytest.mark.parametrize("name", CODE_TABLES["DTYPE_CODES"])
def test_dtype_codes_match_numpy_and_torch_views(name):
    if name != "bfloat16":  # numpy has no bfloat16
        assert view(np.zeros(2, dtype=name)).dtype == name
    assert view(torch.zeros(2, dtype=getattr(torch, name))).dtype == name


def test_a_code_outside_the_table_is_rejected():
    with pytest.raises(TypeError, match="'dtype'.*dtype code 11"):
        _C.TensorView(0, len(_C.DTYPE_CODES), [1], [1])
    with pytest.raises(TypeError, match="dtype code -1"):
        _C.TensorView(0, -1, [1], [1])


def _resample_row(row, shift, interpolation, padding, pre_ops=(), post_ops=()):
    """One (1, 1, 1, W) float32 row resampled with source x = output x + shift."""
    x = np.asarray(row, np.float32).reshape(1, 1, 1, -1)
    out = np.empty_like(x)
    matrices = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, shift]]])
    pre = np.array(pre_ops, np.float32).reshape(1, -1, 4)
    post = np.array(post_ops, np.float32).reshape(1, -1, 4)
    _C.resample_intensity(view(x), view(matrices), view(np.zeros(1, np.int64)), view(pre), view(post), view(out),
                          _C.INTERPOLATION_CODES[interpolation], _C.PADDING_CODES[padding], 0)
    return out.ravel()


@pytest.mark.parametrize("padding,expected", [("zeros", [3, 4, 0, 0]), ("border", [3, 4, 4, 4]),
                                              ("reflect", [3, 4, 4, 3])])
def test_padding_codes_mean_their_names(padding, expected):
    # source x + 2 on a row of 4: the last two outputs read outside (c b a | a b c d | d c b)
    np.testing.assert_array_equal(_resample_row([1, 2, 3, 4], 2.0, "nearest", padding), expected)


@pytest.mark.parametrize("interpolation,expected", [("nearest", [1, 2, 4]), ("linear", [1.25, 2.5, 4.5])])
def test_interpolation_codes_mean_their_names(interpolation, expected):
    np.testing.assert_allclose(_resample_row([1, 2, 4, 6], 0.25, interpolation, "border")[:3], expected, rtol=1e-6)


@pytest.mark.parametrize("op,a,b,expected", [("affine", 2.0, 1.0, [-1, 1, 3, 5]), ("clamp", 0.0, 1.5, [0, 0, 1, 1.5]),
                                             ("power", 2.0, 0.0, [0, 0, 1, 4])])
def test_intensity_op_codes_mean_their_names(op, a, b, expected):
    row = [-1.0, 0.0, 1.0, 2.0]
    ops = [(_C.INTENSITY_OP_CODES[op], a, b, 0.0)]
    np.testing.assert_allclose(_resample_row(row, 0.0, "nearest", "zeros", pre_ops=ops), expected, rtol=1e-6)
    np.testing.assert_allclose(_resample_row(row, 0.0, "nearest", "zeros", post_ops=ops), expected, rtol=1e-6)


def test_noise_code_adds_the_philox_normals():
    std, stream = 0.5, 3
    got = _resample_row([1.0, 2.0, 3.0, 4.0], 0.0, "nearest", "zeros",
                        post_ops=[(_C.INTENSITY_OP_CODES["noise"], std, 0.0, stream)])
    np.testing.assert_allclose(got, np.array([1, 2, 3, 4]) + std * _C.philox_normal(0, 0, stream, 4), rtol=1e-6)


@pytest.mark.parametrize("exponents", [(0, 0, 1), (0, 0, 3), (0, 1, 2)])
def test_bias_term_packing_means_z_y_x_exponents(exponents):
    # one term c * z^ez * y^ey * x^ex over a (1, 1, 3, 5) output, coordinates in [-1, 1] per axis
    ez, ey, ex = exponents
    c = 0.4
    code = sum(w * e for w, e in zip(_C.BIAS_FIELD_EXPONENT_WEIGHTS, exponents))
    ops = [(_C.INTENSITY_OP_CODES["bias_term"], c, float(code), 0.0), (_C.INTENSITY_OP_CODES["bias_apply"], 0, 0, 0)]
    x = np.ones((1, 1, 3, 5), np.float32)
    out = np.empty_like(x)
    identity = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    _C.resample_intensity(view(x), view(identity), view(np.zeros(1, np.int64)), view(np.zeros((1, 0, 4), np.float32)),
                          view(np.array(ops, np.float32)[None]), view(out), _C.INTERPOLATION_CODES["nearest"],
                          _C.PADDING_CODES["zeros"], 0)
    y, xx = np.meshgrid(np.linspace(-1, 1, 3), np.linspace(-1, 1, 5), indexing="ij")
    z = 0.0  # 2D: the z coordinate is 0, so any ez > 0 term vanishes
    np.testing.assert_allclose(out[0, 0], np.exp(c * z ** ez * y ** ey * xx ** ex), rtol=1e-5)


def test_normalize_kind_codes_mean_their_names():
    x = np.array([[[[1.0, 2.0, 3.0, 10.0]]]], np.float32)

    def run(kind, **kw):
        out = np.empty_like(x)
        _C.normalize_intensity(view(x), None, view(out), _C.NORMALIZE_KIND_CODES[kind], False, 0.0, **kw)
        return out.ravel()

    values = x.ravel().astype(np.float64)
    np.testing.assert_allclose(run("zscore"), (values - values.mean()) / values.std(), rtol=1e-5)
    np.testing.assert_allclose(run("minmax"), (values - 1) / 9, rtol=1e-6)
    np.testing.assert_allclose(run("percentile", lower=0.0, upper=50.0), [1, 2, 2.5, 2.5], rtol=1e-6)


@pytest.mark.parametrize("argument,change,message", [
    ("interpolation", dict(interpolation=2), r"'interpolation' must be 0 \(nearest\) or 1 \(linear\), got 2"),
    ("padding", dict(padding=-1), r"'padding' must be 0 \(zeros\), 1 \(border\) or 2 \(reflect\), got -1"),
])
def test_resample_rejects_codes_outside_the_tables(argument, change, message):
    x = np.ones((1, 1, 2, 2), np.float32)
    args = dict(interpolation=1, padding=0)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        _C.resample_intensity(view(x), view(np.zeros((1, 2, 3))), view(np.zeros(1, np.int64)),
                              view(np.zeros((1, 0, 4), np.float32)), view(np.zeros((1, 0, 4), np.float32)),
                              view(np.empty_like(x)), args["interpolation"], args["padding"], 0)


def test_normalize_rejects_kinds_outside_the_table():
    x = np.ones((1, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"'kind' must be 0 \(zscore\), 1 \(minmax\) or 2 \(percentile\), got 3"):
        _C.normalize_intensity(view(x), None, view(np.empty_like(x)), 3, False, 0.0)
    with pytest.raises(ValueError, match=r"'kind' must be .*got -1"):
        _C.normalize_workspace_bytes([1, 1, 2, 2], -1, False, 1)
