"""Preprocessing benchmark cases P1 (a batch of 32 CT slices), P2 (one CT volume) and P3 (MR-style
augmentation of a 128^3 volume: elastic deformation, bias field, noise), medkern's fused Pipeline
against the same workload written with each peer that is importable: the best
hand-written plain torch (one affine_grid + grid_sample, always), MONAI, Kornia, TorchIO.
Each peer applies the same steps with the same parameter ranges (not the same draws: the
libraries have their own generators), so the work per call is the same.
"""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import torch
import torch.nn.functional as F

try:  # benchmarks/run.py puts benchmarks/ itself on sys.path
    from common import BenchCase
except ImportError:
    from benchmarks.common import BenchCase

P1_SHAPE = (32, 1, 512, 512)
P1_OUT = (256, 256)
P2_SHAPE = (1, 1, 160, 512, 512)  # (N, C, D, H, W)
P2_SPACING = (2.5, 0.7, 0.7)
LEVEL, WIDTH = 40.0, 400.0
P3_SHAPE = (1, 1, 128, 128, 128)


def ct_phantom_slices(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Realistic-looking int16 CT slices (raw = HU + 1024): air, body ellipse, organs, bone ring."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    out = np.empty((n, 1, h, w), np.int16)
    for i in range(n):
        a, b = rng.uniform(0.75, 0.9), rng.uniform(0.55, 0.7)
        r = (x / a) ** 2 + (y / b) ** 2
        hu = np.where(r < 1, 40.0, -1000.0)
        hu = np.where((r > 0.85) & (r < 1), 700.0, hu)  # bone-like rim
        for _ in range(4):
            cx, cy, s = rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3), rng.uniform(0.05, 0.15)
            hu += rng.uniform(-80, 120) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / s ** 2)
        hu += rng.normal(0, 15, hu.shape)
        out[i, 0] = np.clip(hu + 1024, 0, 4095).astype(np.int16)
    return out


def ct_phantom_volume(d: int, h: int, w: int) -> np.ndarray:
    slices = ct_phantom_slices(1, h, w)[0, 0].astype(np.float32)
    z = np.linspace(-1, 1, d)[:, None, None]
    vol = slices[None] * (1 - 0.1 * z ** 2)  # slowly varying along z
    return vol.astype(np.int16)[None, None]


# ---- medkern -------------------------------------------------------------------------------
def medkern_p1():
    import medkern.transforms as T
    return T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(LEVEL, WIDTH),
                       T.RandomAffine(15.0, scale=(0.9, 1.1), translate=0.05), T.RandomFlip(axes=(-1,), p=0.5),
                       T.Resize(P1_OUT), T.GaussianNoise(0.02), T.ZScore()], seed=0)


def medkern_p2():
    import medkern.transforms as T
    return T.Pipeline([T.Rescale(1.0, -1024.0), T.Window(LEVEL, WIDTH), T.ResampleToSpacing(1.5),
                       T.RandomAffine((10.0, 10.0, 10.0), scale=(0.9, 1.1), translate=0.05, padding="border"),
                       T.RandomCrop(128), T.ZScore()], seed=0)


# ---- plain torch, fused by hand -------------------------------------------------------------
def _theta_2d(n: int, gen: torch.Generator) -> torch.Tensor:
    """Random rotation/scale/translation/flip per sample as affine_grid thetas (normalized)."""
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(15)
    scale = 0.9 + 0.2 * torch.rand(n, generator=gen)
    t = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.1  # 5 % of the size = 0.1 in [-1, 1] units
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    c, s = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([c * flip, -s, t[:, 0]], 1), torch.stack([s * flip, c, t[:, 1]], 1)], 1)
    return theta


def torch_p1(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    hu = x.float() - 1024.0
    win = ((hu - (LEVEL - WIDTH / 2)) / WIDTH).clamp_(0, 1)
    n = x.shape[0]
    grid = F.affine_grid(_theta_2d(n, gen).to(x.device), (n, 1) + P1_OUT, align_corners=False)
    out = F.grid_sample(win, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out += 0.02 * (torch.randn(out.shape, generator=gen) if x.device.type == "cpu" else torch.randn_like(out))
    flat = out.view(n, -1)
    return ((flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True, unbiased=False)).view_as(out)


def torch_p2(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Resample-to-1.5 mm + affine + crop folded into one theta that samples only the crop."""
    d, h, w = x.shape[2:]
    extent = torch.tensor([w * P2_SPACING[2], h * P2_SPACING[1], d * P2_SPACING[0]])  # mm, (x, y, z)
    out_vox = torch.round(extent / 1.5)
    crop = torch.tensor([128.0, 128.0, 128.0])
    start = torch.floor(torch.rand(3, generator=gen) * (out_vox - crop + 1))
    # crop voxel centre -> resampled grid normalized coordinates: a scale and an offset
    scale = crop / out_vox
    offset = (2 * start + crop) / out_vox - 1
    ang = (torch.rand(3, generator=gen) * 2 - 1) * math.radians(10)
    cz, sz, cy, sy, cx, sx = (torch.cos(ang[0]), torch.sin(ang[0]), torch.cos(ang[1]), torch.sin(ang[1]),
                              torch.cos(ang[2]), torch.sin(ang[2]))
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1.0]])
    ry = torch.tensor([[cy, 0, sy], [0, 1.0, 0], [-sy, 0, cy]])
    rx = torch.tensor([[1.0, 0, 0], [0, cx, -sx], [0, sx, cx]])
    s = 1.0 / (0.9 + 0.2 * torch.rand(1, generator=gen))
    t = (torch.rand(3, generator=gen) * 2 - 1) * 0.1
    rs = (rz @ ry @ rx) * s
    # crop index -> resampled-grid normalized (scale, offset) -> rotated/scaled/shifted source
    theta = torch.cat([rs @ torch.diag(scale), rs @ offset[:, None] + t[:, None]], 1)[None].to(x.device)
    grid = F.affine_grid(theta, (1, 1, 128, 128, 128), align_corners=False)
    # read only the source box the crop's grid touches: convert/window just that box
    size = torch.tensor([w, h, d], dtype=torch.float32, device=x.device)
    index = ((grid.view(-1, 3) + 1) * size - 1) / 2
    lo = torch.clamp(torch.floor(index.min(0).values) - 1, min=0).long()
    hi = torch.minimum(torch.ceil(index.max(0).values) + 2, size).long()
    box = x[:, :, lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    win = (((box.float() - 1024.0) - (LEVEL - WIDTH / 2)) / WIDTH).clamp_(0, 1)
    box_size = (hi - lo).float()
    grid = (2 * (((grid + 1) * size - 1) / 2 - lo.float()) + 1) / box_size - 1
    out = F.grid_sample(win, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (out - out.mean()) / out.std(unbiased=False)


def medkern_p3():
    import medkern.transforms as T
    return T.Pipeline([T.ElasticDeform(7, 5.0, padding="border"), T.BiasField(0.3, order=3), T.GaussianNoise(0.02)],
                      seed=0)


# ---- MONAI / Kornia / TorchIO ---------------------------------------------------------------
def available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def monai_p1():
    from monai import transforms as mt
    return mt.Compose([
        mt.ShiftIntensity(-1024.0),
        mt.ScaleIntensityRange(a_min=LEVEL - WIDTH / 2, a_max=LEVEL + WIDTH / 2, b_min=0.0, b_max=1.0, clip=True),
        mt.RandAffine(prob=1.0, rotate_range=math.radians(15), scale_range=0.1, translate_range=(25.6, 25.6),
                      padding_mode="zeros"),
        mt.RandFlip(prob=0.5, spatial_axis=1),
        mt.Resize(P1_OUT, mode="bilinear"),
        mt.RandGaussianNoise(prob=1.0, std=0.02),
        mt.NormalizeIntensity(),
    ])


def monai_p2(lazy: bool = False):
    from monai import transforms as mt
    return mt.Compose([
        mt.ShiftIntensity(-1024.0),
        mt.ScaleIntensityRange(a_min=LEVEL - WIDTH / 2, a_max=LEVEL + WIDTH / 2, b_min=0.0, b_max=1.0, clip=True),
        mt.Spacing(pixdim=(1.5, 1.5, 1.5), mode="bilinear"),
        mt.RandAffine(prob=1.0, rotate_range=(math.radians(10),) * 3, scale_range=0.1,
                      translate_range=(10, 10, 10), padding_mode="border"),
        mt.RandSpatialCrop((128, 128, 128), random_size=False),
        mt.NormalizeIntensity(),
    ], lazy=lazy)


def kornia_p1():
    import kornia.augmentation as K
    aug = K.AugmentationSequential(K.RandomAffine(degrees=15.0, translate=(0.05, 0.05), scale=(0.9, 1.1), p=1.0),
                                   K.RandomHorizontalFlip(p=0.5))

    def run(x):
        hu = x.float() - 1024.0
        win = ((hu - (LEVEL - WIDTH / 2)) / WIDTH).clamp(0, 1)
        out = F.interpolate(aug(win), size=P1_OUT, mode="bilinear", align_corners=False)
        out = out + 0.02 * torch.randn_like(out)
        flat = out.view(out.shape[0], -1)
        return ((flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True)).view_as(out)
    return run


def torchio_p1():
    import torchio as tio
    return tio.Compose([
        tio.Lambda(lambda t: t - 1024.0),
        tio.RescaleIntensity(out_min_max=(0, 1), in_min_max=(LEVEL - WIDTH / 2, LEVEL + WIDTH / 2)),
        tio.Clamp(0, 1),
        tio.RandomAffine(scales=(0.9, 1.1, 0.9, 1.1, 1, 1), degrees=(0, 0, 0, 0, -15, 15),
                         translation=(25.6, 25.6, 25.6, 25.6, 0, 0), default_pad_value=0),
        tio.RandomFlip(axes=(0,), flip_probability=0.5),
        tio.Resize((256, 256, 1)),
        tio.RandomNoise(std=(0.02, 0.02)),
        tio.ZNormalization(),
    ])


def torchio_p3():
    import torchio as tio
    return tio.Compose([tio.RandomElasticDeformation(num_control_points=7, max_displacement=5.0,
                                                     image_interpolation="linear"),
                        tio.RandomBiasField(coefficients=0.3, order=3), tio.RandomNoise(std=(0.02, 0.02))])


def monai_p3():
    # MONAI's elastic model differs (a Gaussian-smoothed dense random field, not a B-spline
    # control grid); sigma / magnitude chosen for displacements of the same few voxels
    from monai import transforms as mt
    return mt.Compose([mt.Rand3DElastic(sigma_range=(6, 6), magnitude_range=(100, 100), prob=1.0, mode="bilinear",
                                        padding_mode="border"),
                       mt.RandBiasField(coeff_range=(0.0, 0.3), degree=3, prob=1.0),
                       mt.RandGaussianNoise(prob=1.0, std=0.02)])


def cases(device: str = "cpu") -> list:
    """BenchCase rows: P1, P2 and P3, medkern vs each importable peer (plain torch always). Each
    peer's lambda binds its transform and inputs as default arguments: names like ``t`` and
    ``xs`` are reused below, and a late-bound closure would call the last case's transform."""
    rows = []
    x1 = torch.from_numpy(ct_phantom_slices(*P1_SHAPE[:1], *P1_SHAPE[2:])).to(device)
    p1 = medkern_p1()
    gen = torch.Generator().manual_seed(0)
    shape1 = "32x1x512x512 int16 -> 32x1x256x256 float32"
    m1 = lambda: p1(x1)  # noqa: E731
    rows.append(BenchCase("P1", "fused plain torch", shape1, m1, lambda: torch_p1(x1, gen), "torch", device))
    if device == "cpu" and available("monai"):
        t = monai_p1()
        xs = [x1[i].float() for i in range(x1.shape[0])]
        rows.append(BenchCase("P1", "MONAI", shape1, m1, lambda t=t, xs=xs: [t(s) for s in xs], "monai", device))
    if available("kornia"):
        k = kornia_p1()
        rows.append(BenchCase("P1", "Kornia", shape1, m1, lambda k=k: k(x1), "kornia", device))
    if device == "cpu" and available("torchio"):
        t = torchio_p1()
        xs = [x1[i].float()[..., None].transpose(1, 2).contiguous() for i in range(x1.shape[0])]
        rows.append(BenchCase("P1", "TorchIO", shape1, m1, lambda t=t, xs=xs: [t(s) for s in xs], "torchio", device))

    x2 = torch.from_numpy(ct_phantom_volume(*P2_SHAPE[2:])).to(device)
    p2 = medkern_p2()
    shape2 = "1x1x160x512x512 int16 sp(2.5,0.7,0.7) -> 1x1x128^3 float32"
    m2 = lambda: p2(x2, spacing=P2_SPACING)  # noqa: E731
    rows.append(BenchCase("P2", "fused plain torch (crop only)", shape2, m2, lambda: torch_p2(x2, gen), "torch",
                          device))
    if device == "cpu" and available("monai"):
        from monai.data import MetaTensor
        affine = torch.diag(torch.tensor([P2_SPACING[0], P2_SPACING[1], P2_SPACING[2], 1.0], dtype=torch.float64))
        v = MetaTensor(x2[0].float(), affine=affine)
        eager, lazy = monai_p2(False), monai_p2(True)
        rows.append(BenchCase("P2", "MONAI", shape2, m2, lambda eager=eager, v=v: eager(v), "monai", device))
        rows.append(BenchCase("P2", "MONAI lazy", shape2, m2, lambda lazy=lazy, v=v: lazy(v), "monai lazy", device))

    rng = np.random.default_rng(0)
    x3 = torch.from_numpy(rng.random(P3_SHAPE, dtype=np.float32) * 1000).to(device)
    p3 = medkern_p3()
    shape3 = "1x1x128^3 float32: elastic (7^3 grid) + bias field (order 3) + noise"
    m3 = lambda: p3(x3)  # noqa: E731
    if device == "cpu" and available("torchio"):
        t = torchio_p3()
        rows.append(BenchCase("P3", "TorchIO", shape3, m3, lambda t=t: t(x3[0]), "torchio", device))
    if device == "cpu" and available("monai"):
        t = monai_p3()
        rows.append(BenchCase("P3", "MONAI", shape3, m3, lambda t=t: t(x3[0]), "monai", device))
    return rows


def memory_floor_ms(bandwidth_gb_s: float) -> dict:
    """Minimal bytes read + written / copy bandwidth. P1: every input byte and every output byte.
    P2: the source footprint of the 128^3 crop at 1.5 mm (unrotated) plus the output."""
    p1 = np.prod(P1_SHAPE) * 2 + P1_SHAPE[0] * np.prod(P1_OUT) * 4
    footprint = (128 * 1.5 / P2_SPACING[0]) * (128 * 1.5 / P2_SPACING[1]) * (128 * 1.5 / P2_SPACING[2])
    p2 = footprint * 2 + 128 ** 3 * 4
    return {"P1": p1 / (bandwidth_gb_s * 1e9) * 1e3, "P2": p2 / (bandwidth_gb_s * 1e9) * 1e3,
            "P1_bytes": int(p1), "P2_bytes": int(p2)}
