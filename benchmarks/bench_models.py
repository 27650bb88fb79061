"""Whole networks, the way a user meets them: a model built from torch.nn, run three ways in one
process from the same weights — torch eager, ``torch.compile(model)`` (default mode),
``medkern.accelerate(model)`` and ``torch.compile(medkern.accelerate(model))`` — and reported as
ratios (below 1.0 is faster).

    python benchmarks/bench_models.py [--models seedcnn,resnet18,resnet18_224,unet3d]
        [--modes train,infer,latency] [--device cpu|cuda] [--no-compile] [--threads N]
        [--allocator default|tuned] [--repeat 5] [--json out.json]

Modes: ``train`` is one training step (zero_grad, forward, cross-entropy, backward, Adam step);
on a GPU the medkern model's step also runs replayed from a CUDA graph (``medkern_graphs``);
``infer`` is batch inference under ``torch.inference_mode`` in eval mode, reported as images per
second; ``latency`` is the same with batch 1. Batch sizes are per model (``BATCHES``; 224x224
ResNet-18 trains at batch 16 on a CPU, where 128 takes minutes per step) and printed with the
table. Every column runs under the same allocator and thread settings; ``--allocator tuned``
re-runs the script with glibc's mmap/trim thresholds raised (``common.TUNED_MALLOC``).
"""
from __future__ import annotations

import argparse
import copy
import pathlib
import statistics
import sys
import time
import warnings

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import environment, rerun_with_allocator, write_json  # noqa: E402

# model -> (input shape without batch, classes, training batch on cpu, training batch on cuda)
MODELS = {
    "seedcnn": ((1, 28, 28), 2, 128, 128),
    "resnet18": ((1, 28, 28), 2, 128, 128),
    "resnet18_224": ((3, 224, 224), 1000, 16, 128),
    "unet3d": ((1, 40, 56, 40), 3, 2, 2),
}
INFER_BATCH = {"seedcnn": 128, "resnet18": 128, "resnet18_224": 128, "unet3d": 2}
COLUMNS = ("eager", "compile", "medkern", "medkern_compile")


def build(name: str):
    import torch
    from medkern.models import SeedCNN, UNet, resnet18_28, resnet18_224
    torch.manual_seed(0)
    shape, classes = MODELS[name][:2]
    if name == "seedcnn":
        return SeedCNN(shape[0], classes, layers="torch")
    if name == "resnet18":
        return resnet18_28(shape[0], classes, layers="torch")
    if name == "resnet18_224":
        return resnet18_224(shape[0], classes, layers="torch")
    return UNet(3, shape[0], classes, layers="torch")


def variants(name: str, device: str, with_compile: bool) -> dict:
    """column -> model: three copies of one torch.nn model with the same weights."""
    import torch
    import medkern
    base = build(name).to(device)
    out = {"eager": copy.deepcopy(base)}
    if with_compile:
        out["compile"] = torch.compile(copy.deepcopy(base))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["medkern"] = medkern.accelerate(copy.deepcopy(base), verbose=False)
        if with_compile:
            out["medkern_compile"] = torch.compile(medkern.accelerate(copy.deepcopy(base), verbose=False))
    return out


def batch(name: str, size: int, device: str):
    import torch
    shape, classes = MODELS[name][:2]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(size, *shape, generator=g)
    target_shape = (size, *shape[1:]) if name == "unet3d" else (size,)
    y = torch.randint(0, classes, target_shape, generator=g)
    return x.to(device), y.to(device)


def graphed_train_step(model, x, y):
    """medkern's model with its training step replayed from a CUDA graph (capturable Adam)."""
    import torch
    import torch.nn.functional as F
    from medkern.train import GraphedTrainStep, make_capturable_optimizer
    optimizer = make_capturable_optimizer("adam", model.parameters(), 1e-3, 0.0, x.device)
    graphed = GraphedTrainStep(model, optimizer, F.cross_entropy, x, y)
    return lambda: graphed(x, y)


def train_step(model, x, y):
    import torch
    import torch.nn.functional as F
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return step


def infer_step(model, x):
    import torch

    def step():
        with torch.inference_mode():
            model(x)
    return step


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def time_columns(steps: dict, device: str, repeat: int, warmup: int) -> dict:
    """Median seconds per call per column, the columns interleaved call by call so drift hits all."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    sync(device)
    samples = {k: [] for k in steps}
    for _ in range(repeat):
        for k, fn in steps.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            samples[k].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), (max(v) - min(v)) / statistics.median(v)) for k, v in samples.items()}


def run_model(name: str, modes: list[str], device: str, with_compile: bool, repeat: int, warmup: int) -> list[dict]:
    models = variants(name, device, with_compile)
    rows = []
    for mode in modes:
        if mode == "train":
            size = MODELS[name][2 if device == "cpu" else 3]
            x, y = batch(name, size, device)
            for m in models.values():
                m.train()
            steps = {k: train_step(m, x, y) for k, m in models.items()}
            if device.startswith("cuda"):
                steps["medkern_graphs"] = graphed_train_step(models["medkern"], x, y)
        else:
            size = INFER_BATCH[name] if mode == "infer" else 1
            x, _ = batch(name, size, device)
            for m in models.values():
                m.eval()
            steps = {k: infer_step(m, x) for k, m in models.items()}
        print(f"# {name} {mode} batch {size}", file=sys.stderr, flush=True)
        times = time_columns(steps, device, repeat, warmup)
        row = {"model": name, "mode": mode, "batch": size}
        for k, (t, spread) in times.items():
            row[f"{k}_ms"], row[f"{k}_spread"] = t * 1e3, spread
        for k in times:
            if k != "eager":
                row[f"{k}_ratio"] = times[k][0] / times["eager"][0]
        if "compile" in times:
            row["medkern_vs_compile"] = times["medkern"][0] / times["compile"][0]
            row["medkern_compile_vs_compile"] = times["medkern_compile"][0] / times["compile"][0]
        if "medkern_graphs" in times:
            print(f"  {name} {mode}: medkern with CUDA graphs {times['medkern_graphs'][0] * 1e3:.2f} ms, "
                  f"{row['medkern_graphs_ratio']:.2f} of eager", file=sys.stderr)
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    header = (f"{'model':<13} {'mode':<8} {'batch':>5} {'eager ms':>10} {'compile ms':>10} {'medkern ms':>10} "
              f"{'mk+compile ms':>13} {'compile/eager':>13} {'medkern/eager':>13} {'medkern/compile':>15} "
              f"{'mk+compile/compile':>18}")
    print(header)
    print("-" * len(header))
    for r in rows:
        def cell(key, fmt, width):
            return f"{r[key]:{width}{fmt}}" if key in r else f"{'-':>{width}}"
        print(f"{r['model']:<13} {r['mode']:<8} {r['batch']:>5} {cell('eager_ms', '.1f', 10)} "
              f"{cell('compile_ms', '.1f', 10)} {cell('medkern_ms', '.1f', 10)} {cell('medkern_compile_ms', '.1f', 13)} "
              f"{cell('compile_ratio', '.2f', 13)} {cell('medkern_ratio', '.2f', 13)} "
              f"{cell('medkern_vs_compile', '.2f', 15)} {cell('medkern_compile_vs_compile', '.2f', 18)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--modes", default="train,infer,latency", help="comma-separated, of train, infer, latency")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and medkern alike")
    parser.add_argument("--allocator", choices=["default", "tuned"], default="default")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per column (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per column first (compiles)")
    parser.add_argument("--json", help="write rows and settings here")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    modes = args.modes.split(",")
    bad = [m for m in models if m not in MODELS] + [m for m in modes if m not in ("train", "infer", "latency")]
    if bad:
        parser.error(f"unknown model or mode: {', '.join(bad)}")
    status = rerun_with_allocator(args.allocator)
    if status is not None:
        return status

    import torch
    import medkern
    # every model instance and mode (grad / inference, batch size) of one forward function is a
    # separate compiled entry: the default limit (8) would silently fall back to eager
    torch._dynamo.config.recompile_limit = 1024
    if args.threads:
        torch.set_num_threads(args.threads)
        medkern.set_num_threads(args.threads)
    rows = []
    for name in models:
        rows += run_model(name, modes, args.device, not args.no_compile, args.repeat, args.warmup)
    env = environment(args.allocator, device=args.device)
    print(f"torch {env['torch']}, {env['torch_threads']} threads, medkern {env['medkern']['version']} "
          f"(simd {env['medkern']['simd_level']}), allocator {args.allocator}, device {args.device}")
    print_table(rows)
    write_json(args.json, env, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
