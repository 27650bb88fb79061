"""Segmentation speed, one machine, one run: a training epoch of the same U-Net on the same
hippocampus cases with the same patch and batch, medkern's path (its kernels with fused
norm + activation, patches from the in-memory cases, augmentation fused on the training device)
against the network in plain torch fed by MONAI's recipe (CacheDataset, NormalizeIntensityd,
SpatialPadd, RandSpatialCropd, RandFlipd, RandAffined); and sliding-window prediction of one
volume, medkern.segmentation.sliding_window against monai.inferers.sliding_window_inference with
the same network and settings. A peer that is not installed gives rows marked "not installed".

    python benchmarks/bench_segmentation.py [--data DIR] [--cases 40] [--steps N] [--device cpu|cuda]
                                            [--features 16,32,64,128] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

import medkern  # noqa: E402
from medkern.data import BatchAugment  # noqa: E402
from medkern.models import UNet  # noqa: E402
from medkern.segmentation import (DiceCELoss, PatchSampler, augmentation_pipeline, gamma_retain_stats,  # noqa: E402
                                  open_segmentation_data, sliding_window)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def medkern_epoch(data, features, patch, batch, steps, device) -> float:
    torch.manual_seed(0)
    net = medkern.accelerate(UNet(3, data.in_channels, data.num_classes, features=features)).to(device)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    loss_fn = DiceCELoss(data.num_classes)
    sampler = PatchSampler(data.cases, patch, seed=0)
    augment = BatchAugment(augmentation_pipeline(3, 0), device=device, mask_key=1)

    def step(k):
        x, y = sampler.batch(1, k * batch, batch)
        idx = torch.arange(k * batch, (k + 1) * batch)
        x, y = augment((torch.from_numpy(x), torch.from_numpy(y)[:, None]), indices=idx)
        x = gamma_retain_stats(x, idx, 0)
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y[:, 0].long()).backward()
        opt.step()
    step(0)
    _sync(device)
    start = time.perf_counter()
    for k in range(1, steps + 1):
        step(k)
    _sync(device)
    return time.perf_counter() - start


def monai_epoch(root, names, features, patch, batch, steps, device) -> float | None:
    try:
        from monai.data import CacheDataset, DataLoader
        from monai.transforms import (Compose, EnsureChannelFirstd, LoadImaged, NormalizeIntensityd, RandAffined,
                                      RandFlipd, RandSpatialCropd, SpatialPadd)
    except ImportError:
        return None
    items = [{"image": str(root / "imagesTr" / f"{n}.nii.gz"), "label": str(root / "labelsTr" / f"{n}.nii.gz")}
             for n in names]
    keys = ("image", "label")
    recipe = Compose([LoadImaged(keys), EnsureChannelFirstd(keys), NormalizeIntensityd("image"),
                      SpatialPadd(keys, patch), RandSpatialCropd(keys, patch, random_size=False),
                      RandFlipd(keys, prob=0.5, spatial_axis=0), RandFlipd(keys, prob=0.5, spatial_axis=1),
                      RandFlipd(keys, prob=0.5, spatial_axis=2),
                      RandAffined(keys, prob=0.5, rotate_range=(0.26,) * 3, scale_range=(0.15,) * 3,
                                  mode=("bilinear", "nearest"), padding_mode="zeros")])
    dataset = CacheDataset(items, recipe, cache_rate=1.0, progress=False)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0)
    torch.manual_seed(0)
    net = UNet(3, 1, 3, features=features, layers="torch").to(device)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    loss_fn = DiceCELoss(3)
    done, start = -1, None
    while done < steps:
        for b in loader:
            x, y = b["image"].as_tensor().to(device), b["label"].as_tensor().to(device)
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x), y[:, 0].long()).backward()
            opt.step()
            done += 1
            if done == 0:
                _sync(device)
                start = time.perf_counter()
            if done == steps:
                break
    _sync(device)
    return time.perf_counter() - start


def window_times(case, features, patch, device) -> tuple[float, float | None]:
    torch.manual_seed(0)
    net = medkern.accelerate(UNet(3, 1, 3, features=features)).to(device).eval()
    image = torch.from_numpy(case.image).to(device)
    ours = _best(lambda: sliding_window(net, image, patch, overlap=0.5, batch_size=4), device)
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        return ours, None
    with torch.inference_mode():
        peer = _best(lambda: sliding_window_inference(image[None], patch, 4, net, overlap=0.5, mode="gaussian"),
                     device)
    return ours, peer


def _best(fn, device, repeat=3) -> float:
    fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("MEDKERN_TEST_DATA", str(HERE.parents[1] / "shared" / "data"))
                        + "/hippocampus")
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per side")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", default="40x56x40")
    parser.add_argument("--features", default="16,32,64,128")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    patch = tuple(int(v) for v in args.patch.split("x"))
    features = tuple(int(v) for v in args.features.split(","))
    root = pathlib.Path(args.data)
    data = open_segmentation_data(root, max_cases=args.cases)
    names = [c.name for c in data.cases]
    rows = {"machine": {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
                        "medkern": medkern.info()["simd_level"]},
            "settings": {"cases": len(names), "steps": args.steps, "batch": args.batch, "patch": patch,
                         "features": features}}
    t_m = medkern_epoch(data, features, patch, args.batch, args.steps, device)
    t_p = monai_epoch(root, names, features, patch, args.batch, args.steps, device)
    rows["training_step_s"] = {"medkern": t_m / args.steps,
                               "torch+monai": None if t_p is None else t_p / args.steps}
    w_m, w_p = window_times(data.cases[0], features, patch, device)
    rows["sliding_window_s"] = {"medkern": w_m, "monai": w_p}
    print(f"training step (batch {args.batch}, patch {args.patch}, features {args.features}) on {device}:")
    print(f"  medkern          {t_m / args.steps:8.3f} s")
    print(f"  torch + MONAI    {'not installed' if t_p is None else f'{t_p / args.steps:8.3f} s'}"
          + ("" if t_p is None else f"   speed-up {t_p / t_m:.2f}x"))
    print(f"sliding window, one volume {tuple(data.cases[0].image.shape[1:])}:")
    print(f"  medkern          {w_m * 1e3:8.1f} ms")
    print(f"  MONAI            {'not installed' if w_p is None else f'{w_p * 1e3:8.1f} ms'}"
          + ("" if w_p is None else f"   ratio {w_m / w_p:.2f}"))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
