"""Where the GPU time of each benchmark convolution goes: for every 2-D conv layer of
benchmarks/cases_cuda.py (batch 128) and every 3-D U-Net / MONAI UNet layer of
benchmarks/cases_conv3d.py (batch 2), one forward+backward (torch's defaults: TF32 on) of medkern
and of torch/cuDNN under torch.profiler, summed per CUDA kernel. Device time separates kernel speed
from host overhead (the benchmark's wall-clock ratio contains both); the kernel split shows which
of forward / input gradient / weight gradient / layout conversion dominates.

    PYTHONPATH=python:. python scripts/gpu_conv_profile.py OUTDIR [--iters 5] [--only NAME] [--dims 2,3]

Writes OUTDIR/gpu_conv_profile.json and prints one line per layer plus its top kernels.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "python")]

import medkern.ops as mops  # noqa: E402
from benchmarks import cases_conv3d  # noqa: E402
from benchmarks.cases_cuda import conv_layers  # noqa: E402


def kernel_times(fn, iters: int) -> tuple[float, dict[str, float], float]:
    """(device ms per iteration, {kernel name: ms per iteration}, wall ms per iteration)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) / iters * 1e3
    per_kernel: dict[str, float] = collections.defaultdict(float)
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            per_kernel[event.name[:90]] += event.device_time / 1e3 / iters
    return sum(per_kernel.values()), dict(per_kernel), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=pathlib.Path)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--only", default="", help="substring of the layer names to profile")
    parser.add_argument("--dims", default="2,3", help="which layers: 2 (2-D), 3 (3-D) or 2,3")
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    dims = {int(v) for v in args.dims.split(",")}
    rows = []

    def profile_layer(name, x, w, b, kw, mine, peer, wanted):
        g = torch.randn_like(peer(x.detach(), w.detach(), None, **kw))
        row = {"name": name}
        for lib, fn in (("medkern", mine), ("torch", peer)):
            step = lambda fn=fn: torch.autograd.grad(fn(x, w, b, **kw), wanted, g)  # noqa: E731
            device_ms, kernels, wall_ms = kernel_times(step, args.iters)
            row[lib] = {"device_ms": device_ms, "wall_ms": wall_ms,
                        "kernels": dict(sorted(kernels.items(), key=lambda kv: -kv[1])[:6])}
        row["device_ratio"] = row["medkern"]["device_ms"] / max(row["torch"]["device_ms"], 1e-9)
        row["wall_ratio"] = row["medkern"]["wall_ms"] / max(row["torch"]["wall_ms"], 1e-9)
        rows.append(row)
        print(f"{name:<36} device {row['medkern']['device_ms']:7.3f} / {row['torch']['device_ms']:7.3f} ms"
              f" = {row['device_ratio']:5.2f}   wall {row['medkern']['wall_ms']:7.3f} / {row['torch']['wall_ms']:7.3f}"
              f" ms = {row['wall_ratio']:5.2f}")
        for kname, ms in list(row["medkern"]["kernels"].items())[:4]:
            print(f"      {ms:7.3f} ms  {kname}")
        torch.cuda.empty_cache()

    for layer in conv_layers() if 2 in dims else []:
        if args.only and args.only not in layer.name:
            continue
        x = torch.randn(args.batch, layer.c_in, layer.size, layer.size, device="cuda").requires_grad_(not layer.first)
        w = (torch.randn(layer.c_out, layer.c_in, layer.kernel, layer.kernel, device="cuda") * 0.05).requires_grad_()
        b = torch.randn(layer.c_out, device="cuda").requires_grad_()
        profile_layer(layer.name, x, w, b, dict(stride=layer.stride, padding=layer.padding), mops.conv2d, F.conv2d,
                      (w, b) if layer.first else (x, w, b))
    for layer in cases_conv3d.layers() if 3 in dims else []:
        if args.only and args.only not in layer.name:
            continue
        x, w, b, kw, mine, peer = cases_conv3d.layer_operands(layer, cases_conv3d.BATCH, "cuda")
        x, w, b = (t.requires_grad_() for t in (x, w, b))
        profile_layer(layer.name, x, w, b, kw, mine, peer, (x, w, b))
    # the fused instance norm + LeakyReLU of the 3-D U-Net against torch's two modules: device time
    # of the kernels alone, as bandwidth over the fused layer's compulsory traffic (x read and y
    # written forward; dy and x read twice, dx written backward: 7 tensors)
    import copy

    import medkern.nn
    for c, spatial in ((32, (40, 56, 40)), (128, (10, 14, 10))) if 3 in dims else ():
        norm = torch.nn.InstanceNorm3d(c, affine=True).cuda()
        peer = torch.nn.Sequential(norm, torch.nn.LeakyReLU(0.01))
        fused = medkern.nn.fuse_norm_act(copy.deepcopy(norm), torch.nn.LeakyReLU(0.01))
        x = torch.randn(2, c, *spatial, device="cuda", requires_grad=True)
        g = torch.randn_like(x)
        row = {"name": f"instance_norm3d+leaky unet3d.c{c}", "bytes": 7 * x.numel() * 4}
        for lib, mod in (("medkern", fused), ("torch", peer)):
            step = lambda m=mod: torch.autograd.grad(m(x), (x, *m.parameters()), g)  # noqa: E731
            device_ms, kernels, wall_ms = kernel_times(step, args.iters)
            row[lib] = {"device_ms": device_ms, "wall_ms": wall_ms, "device_gbps": row["bytes"] / device_ms / 1e6,
                        "kernels": dict(sorted(kernels.items(), key=lambda kv: -kv[1])[:8])}
        rows.append(row)
        print(f"{row['name']:<36} device {row['medkern']['device_ms']:7.3f} / {row['torch']['device_ms']:7.3f} ms"
              f" ({row['medkern']['device_gbps']:.0f} / {row['torch']['device_gbps']:.0f} GB/s)   wall "
              f"{row['medkern']['wall_ms']:7.3f} / {row['torch']['wall_ms']:7.3f} ms")
        for kname, ms in list(row["medkern"]["kernels"].items())[:6]:
            print(f"      {ms:7.3f} ms  {kname}")
    (args.outdir / "gpu_conv_profile.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
