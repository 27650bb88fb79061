"""Calls every medkern CUDA op once (forward and backward, each dtype family) on small shapes, for
compute-sanitizer: `compute-sanitizer --tool memcheck python scripts/sanitizer_driver.py`.
Shapes are chosen to hit each kernel variant: implicit-GEMM tiles with ragged edges, the split-K
weight gradient, the TF32 pipeline's tile configurations and stride phases, the direct single-channel kernels, 3-D and transposed convolutions, 2-D and 3-D pooling, group /
instance norm with fused activations, both batch-norm paths, both relu paths, and
the preprocessing kernels (resample with elastic/bias/noise/labels, statistics, filter).
Exits nonzero if any op raised."""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import traceback

import torch
import torch.nn.functional as F

try:  # the installed medkern; else the in-place development build of this checkout
    import medkern._C  # noqa: F401
except ImportError:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))
import medkern.ops as mops  # noqa: E402

DEV = os.environ.get("MEDKERN_SANITIZER_DEVICE", "cuda")  # "cpu": a dry run of the driver itself


def grads(out, inputs):
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    return torch.autograd.grad(out, wanted, torch.randn_like(out))


def req(*shape, dtype=torch.float32):
    return torch.randn(*shape, device=DEV, dtype=dtype).requires_grad_(True)


def conv(dtype, tf32):
    torch.backends.cudnn.allow_tf32 = tf32
    for (n, c, h, w, k, ks, stride, pad, groups) in [(2, 5, 9, 7, 67, 3, 1, 1, 1), (3, 1, 8, 8, 4, 3, 2, 1, 1),
                                                     (2, 6, 7, 7, 6, 3, 1, 1, 6), (16, 8, 20, 20, 8, 3, 1, 1, 1),
                                                     (2, 4, 6, 6, 6, 1, 2, 0, 2),
                                                     # TF32 path (float32 with tf32): 128x128 tiles and
                                                     # the wide weight gradient; stride-2 phases
                                                     (48, 64, 16, 16, 256, 3, 1, 1, 1),
                                                     (4, 64, 14, 14, 128, 3, 2, 1, 1)]:
        x, wt, b = req(n, c, h, w, dtype=dtype), req(k, c // groups, ks, ks, dtype=dtype), req(k, dtype=dtype)
        grads(mops.conv2d(x, wt, b, stride=stride, padding=pad, groups=groups), [x, wt, b])
        grads(mops.conv2d_relu(x, wt, b, stride=stride, padding=pad, groups=groups), [x, wt, b])


def conv3d(dtype, tf32):
    """3-D and transposed convolutions: ragged implicit-GEMM tiles, strides, groups, dilation and
    output_padding (the transposed forward runs conv's input-gradient kernels)."""
    torch.backends.cudnn.allow_tf32 = tf32
    # the last case gives the TF32 path (float32 with tf32) 128x128 forward tiles and eight phases
    for (n, c, d, k, ks, stride, pad, groups) in [(2, 3, 7, 5, 3, 1, 1, 1), (1, 1, 9, 8, 3, 2, 1, 1),
                                                  (2, 4, 6, 6, 3, 1, 1, 2), (2, 16, 8, 32, 3, 2, 1, 1),
                                                  (2, 16, 22, 128, 3, 1, 1, 1), (2, 32, 10, 64, 3, 2, 1, 1)]:
        x = req(n, c, d, d + 1, d - 1, dtype=dtype)
        w, b = req(k, c // groups, ks, ks, ks, dtype=dtype), req(k, dtype=dtype)
        grads(mops.conv3d(x, w, b, stride=stride, padding=pad, groups=groups), [x, w, b])
        wt = req(c, k // groups, 2, 2, 2, dtype=dtype)
        grads(mops.conv_transpose3d(x, wt, req(k, dtype=dtype), stride=2, groups=groups), [x, wt])
    x2, w2 = req(2, 4, 7, 9, dtype=dtype), req(4, 3, 3, 3, dtype=dtype)
    grads(mops.conv_transpose2d(x2, w2, None, stride=2, padding=1, output_padding=1, dilation=1), [x2, w2])


def norm_act(dtype):
    """Group / instance norm with and without the fused activation, 2-D and 3-D, and leaky_relu."""
    pdt = torch.float64 if dtype == torch.float64 else torch.float32
    for shape, groups in [((2, 6, 5, 7), 3), ((2, 8, 4, 5, 6), 8), ((1, 4, 33, 3), 2)]:
        x = req(*shape, dtype=dtype)
        w, b = req(shape[1], dtype=pdt), req(shape[1], dtype=pdt)
        grads(mops.group_norm(x, groups, w, b), [x, w, b])
        grads(mops.group_norm(x, groups, w, b, activation="leaky_relu"), [x, w, b])
        grads(mops.instance_norm(x, weight=w, bias=b, activation="relu"), [x, w, b])
        grads(mops.leaky_relu(x, 0.1), [x])


def linear(dtype, tf32):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    for m, k, n in [(5, 7, 3), (300, 70, 66), (2048, 16, 8)]:
        x, w, b = req(m, k, dtype=dtype), req(n, k, dtype=dtype), req(n, dtype=dtype)
        grads(mops.linear(x, w, b), [x, w, b])


def pooling(dtype):
    x = req(2, 3, 9, 11, dtype=dtype)
    grads(mops.max_pool2d(x, 3, 2, 1, ceil_mode=True), [x])
    grads(mops.max_pool2d(x, (2, 3), (1, 2), (1, 0), dilation=(2, 1)), [x])
    grads(mops.avg_pool2d(x, 3, 2, 1, count_include_pad=False), [x])
    grads(mops.avg_pool2d(x, 2, 2, ceil_mode=True, divisor_override=3), [x])
    v = req(2, 3, 7, 9, 6, dtype=dtype)
    grads(mops.max_pool3d(v, 2, 2, ceil_mode=True), [v])
    grads(mops.max_pool3d(v, (3, 2, 2), (2, 1, 2), (1, 0, 1), dilation=(1, 2, 1)), [v])
    grads(mops.avg_pool3d(v, 3, 2, 1, count_include_pad=False), [v])
    grads(mops.avg_pool3d(v, 2, 2, ceil_mode=True, divisor_override=3), [v])


def batch_norm(dtype):
    for shape in [(4, 3, 5, 5), (64, 4, 32, 32), (6, 5)]:
        c = shape[1]
        x = req(*shape, dtype=dtype)
        pdt = torch.float64 if dtype == torch.float64 else torch.float32  # torch's parameter dtype rule
        w, b = req(c, dtype=pdt), req(c, dtype=pdt)
        rm, rv = torch.zeros(c, device=DEV, dtype=pdt), torch.ones(c, device=DEV, dtype=pdt)
        grads(mops.batch_norm(x, rm, rv, w, b, True), [x, w, b])
        grads(mops.batch_norm(x, rm, rv, w, b, False), [x, w, b])
        grads(mops.batch_norm(x, None, None, None, None, True), [x])


def relu(dtype):
    x = req(3, 5, 7, dtype=dtype)
    grads(mops.relu(x), [x])
    y = torch.randn(1001, device=DEV, dtype=dtype)[1:].requires_grad_(True)   # misaligned: scalar path
    grads(mops.relu(y), [y])
    z = torch.randn(4, 6, device=DEV, dtype=dtype).t().requires_grad_(True)  # strided path
    grads(mops.relu(z), [z])


def preprocess(dtype):
    """The fused preprocessing kernels (dtype = the output dtype): resampling with elastic field,
    bias field, noise and a label; the statistics pass with the one-block-per-image and the
    multi-block (single volume) paths, percentile radix select with and without a mask; the
    separable filter stage."""
    import medkern.transforms as T
    if dtype == torch.float64:
        return  # the pipeline writes float32 / float16 / bfloat16
    out = str(dtype).rpartition(".")[2]
    x = torch.randint(0, 2000, (3, 1, 37, 41), dtype=torch.int16, device=DEV)
    label = torch.randint(0, 3, (3, 1, 37, 41), dtype=torch.uint8, device=DEV)
    p = T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(40, 400), T.RandomAffine(10), T.ElasticDeform(5, 2.0),
                    T.BiasField(0.3), T.GaussianNoise((0.0, 0.05)), T.PercentileClip(1, 99), T.ZScore()],
                   seed=1, out_dtype=out)
    p(x, label=label)
    v = torch.randint(0, 2000, (1, 1, 40, 48, 52), dtype=torch.int16, device=DEV)
    mask = torch.rand(1, 1, 20, 24, 26, device=DEV) > 0.3
    T.Pipeline([T.Resize((20, 24, 26)), T.PercentileClip(0.5, 99.5, rescale=True), T.MinMax()], out_dtype=out)(v)
    T.Pipeline([T.Resize((20, 24, 26)), T.ZScore()], out_dtype=out)(v, mask=mask)
    T.Pipeline([T.GaussianBlur(1.2), T.Resize((20, 17, 13), antialias=True), T.RandomGaussianBlur((0.5, 1.5))],
               out_dtype=out)(v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated families (conv2d,conv3d,linear,pooling,batch_norm,norm_act,relu,preprocess)")
    parser.add_argument("--dtypes", default="float32,float64,float16,bfloat16")
    args = parser.parse_args()
    families = [f for f in args.only.split(",") if f]
    steps = []
    for dtype in (getattr(torch, name) for name in args.dtypes.split(",")):
        for tf32 in ((False, True) if dtype == torch.float32 else (False,)):
            steps += [(f"conv2d {dtype} tf32={tf32}", lambda d=dtype, t=tf32: conv(d, t)),
                      (f"conv3d {dtype} tf32={tf32}", lambda d=dtype, t=tf32: conv3d(d, t)),
                      (f"linear {dtype} tf32={tf32}", lambda d=dtype, t=tf32: linear(d, t))]
        steps += [(f"pooling {dtype}", lambda d=dtype: pooling(d)),
                  (f"batch_norm {dtype}", lambda d=dtype: batch_norm(d)),
                  (f"norm_act {dtype}", lambda d=dtype: norm_act(d)),
                  (f"relu {dtype}", lambda d=dtype: relu(d)),
                  (f"preprocess {dtype}", lambda d=dtype: preprocess(d))]
    if families:
        steps = [(name, fn) for name, fn in steps if name.split()[0] in families]
    failed = 0
    for name, fn in steps:
        try:
            fn()
            if DEV == "cuda":
                torch.cuda.synchronize()
            print(f"ok      {name}")
        except Exception:  # noqa: BLE001 - report every failing op, then fail
            failed += 1
            print(f"FAILED  {name}\n{traceback.format_exc()}")
    print(f"sanitizer driver: {len(steps) - failed}/{len(steps)} steps ok")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
