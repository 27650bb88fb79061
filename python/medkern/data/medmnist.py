"""MedMNIST v2 datasets (2D 28x28 and 3D 28x28x28): the official file table (URL, md5, task), checked downloads
into a cache, and npz splits turned into normalised float tensors once, batched by indexing with a
seeded permutation so the training hot path does no per-sample Python work."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
from typing import Iterator

import numpy as np
import torch

__all__ = [
    "DATASETS", "DatasetInfo", "DataError", "ChecksumError", "SPLITS", "MEAN", "STD",
    "cache_dir", "dataset_info", "resolve_dataset", "download", "load_npz", "Split", "BatchLoader",
]

# MedMNIST normalises [0, 1] pixels with mean 0.5, std 0.5 (to [-1, 1]) for every 2D dataset.
MEAN = 0.5
STD = 0.5
SPLITS = ("train", "val", "test")

# Zenodo record of MedMNIST v2 (the files the `medmnist` package 2.x downloads).
OFFICIAL_BASE_URL = "https://zenodo.org/record/6496656/files"
BASE_URL_ENV = "MEDKERN_MEDMNIST_URL"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    md5: str                 # of the official <name>.npz
    task: str                # "binary", "multi-class", "multi-label" or "ordinal" (trained as multi-class)
    channels: int
    classes: int             # labels for multi-label
    published_auc: float | None  # MedMNIST v2 paper, ResNet-18 (28), test split (2D tables only)
    published_acc: float | None
    spatial_dims: int = 2    # 3 for the 28x28x28 volumes

    def url(self, base_url: str | None = None) -> str:
        base = base_url or os.environ.get(BASE_URL_ENV) or OFFICIAL_BASE_URL
        return f"{base.rstrip('/')}/{self.name}.npz"


# md5 from medmnist/info.py (MedMNIST 2.x); published figures from the MedMNIST v2 paper (Sci. Data
# 2023), Table of 2D results, row "ResNet-18 (28)".
DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("pathmnist", "a8b06965200029087d5bd730944a56c1", "multi-class", 3, 9, 0.983, 0.907),
    DatasetInfo("chestmnist", "02c8a6516a18b556561a56cbdd36c4a8", "multi-label", 1, 14, 0.768, 0.947),
    DatasetInfo("dermamnist", "0744692d530f8e62ec473284d019b0c7", "multi-class", 3, 7, 0.917, 0.735),
    DatasetInfo("octmnist", "c68d92d5b585d8d81f7112f81e2d0842", "multi-class", 1, 4, 0.943, 0.743),
    DatasetInfo("pneumoniamnist", "28209eda62fecd6e6a2d98b1501bb15f", "binary", 1, 2, 0.944, 0.854),
    DatasetInfo("retinamnist", "bd4c0672f1bba3e3a89f0e4e876791e4", "ordinal", 3, 5, 0.717, 0.524),
    DatasetInfo("breastmnist", "750601b1f35ba3300ea97c75c52ff8f6", "binary", 1, 2, 0.901, 0.863),
    DatasetInfo("bloodmnist", "7053d0359d879ad8a5505303e11de1dc", "multi-class", 3, 8, 0.998, 0.958),
    DatasetInfo("tissuemnist", "ebe78ee8b05294063de985d821c1c34b", "multi-class", 1, 8, 0.930, 0.676),
    DatasetInfo("organamnist", "866b832ed4eeba67bfb9edee1d5544e6", "multi-class", 1, 11, 0.997, 0.935),
    DatasetInfo("organcmnist", "0afa5834fb105f7705a7d93372119a21", "multi-class", 1, 11, 0.992, 0.900),
    DatasetInfo("organsmnist", "e5c39f1af030238290b9557d9503af9d", "multi-class", 1, 11, 0.972, 0.782),
    # 3D (28x28x28): md5 from the same table; no published figure is carried for them
    DatasetInfo("organmnist3d", "21f0a239e7f502e6eca33c3fc453c0b6", "multi-class", 1, 11, None, None, 3),
    DatasetInfo("nodulemnist3d", "8755a7e9e05a4d9ce80a24c3e7a256f3", "binary", 1, 2, None, None, 3),
    DatasetInfo("adrenalmnist3d", "bbd3c5a5576322bc4cdfea780653b1ce", "binary", 1, 2, None, None, 3),
    DatasetInfo("fracturemnist3d", "6aa7b0143a6b42da40027a9dda61302f", "multi-class", 1, 3, None, None, 3),
    DatasetInfo("vesselmnist3d", "2ba5b80617d705141f3f85627108fce8", "binary", 1, 2, None, None, 3),
    DatasetInfo("synapsemnist3d", "1235b78a3cd6280881dd7850a78eadb6", "binary", 1, 2, None, None, 3),
)}


class DataError(ValueError):
    """A dataset file that is missing, unreadable or not in MedMNIST's npz layout."""


class ChecksumError(DataError):
    """A downloaded file whose md5 differs from the expected one (the file is deleted)."""


def cache_dir() -> pathlib.Path:
    """Where downloads go: $MEDKERN_CACHE, else ~/.cache/medkern."""
    env = os.environ.get("MEDKERN_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "medkern"


def dataset_info(name: str) -> DatasetInfo:
    key = name.lower()
    if key not in DATASETS:
        raise DataError(f"argument 'dataset': unknown MedMNIST dataset '{name}'; "
                        f"choose one of {', '.join(DATASETS)}")
    return DATASETS[key]


def resolve_dataset(name: str, download_missing: bool = True, progress: bool = True) -> pathlib.Path:
    """Path of ``<name>.npz``: a local copy in $MEDKERN_DATA is used as is (trusted, no checksum:
    local copies may order samples differently from the official file); otherwise the cache,
    downloading the official file (md5-checked) when it is not there yet."""
    info = dataset_info(name)
    local = os.environ.get("MEDKERN_DATA")
    if local and (pathlib.Path(local) / f"{info.name}.npz").is_file():
        return pathlib.Path(local) / f"{info.name}.npz"
    cached = cache_dir() / f"{info.name}.npz"
    if cached.is_file():
        return cached
    if not download_missing:
        raise DataError(f"argument 'dataset': {info.name}.npz is not in {cache_dir()} "
                        f"(or $MEDKERN_DATA) and downloading is off")
    return download(info.name, cache_dir(), progress=progress)


def _md5_of(path: pathlib.Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(name: str, dest_dir: str | os.PathLike, base_url: str | None = None, md5: str | None = None,
             progress: bool = True, timeout: float = 60.0) -> pathlib.Path:
    """Downloads ``<name>.npz`` into ``dest_dir``: streamed to a temporary file in the same
    directory, md5-checked (``md5`` overrides the table's value), then renamed atomically, so a
    failed or corrupt download never leaves a file under the final name."""
    from tqdm.auto import tqdm

    info = dataset_info(name)
    expected = (md5 or info.md5).lower()
    dest_dir = pathlib.Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{info.name}.npz"
    url = info.url(base_url)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{info.name}.", suffix=".part", dir=dest_dir)
    tmp = pathlib.Path(tmp_name)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except urllib.error.HTTPError as err:
                raise DataError(f"downloading {info.name}.npz from {url} failed: HTTP {err.code} {err.reason}") from None
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                raise DataError(f"downloading {info.name}.npz from {url} failed: {reason}") from None
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"{info.name}.npz",
                          disable=not progress, leave=False) as bar:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(f"downloaded {info.name}.npz from {url} has md5 {actual}, expected {expected}; "
                                f"the file was deleted")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


@dataclasses.dataclass
class Split:
    """One split as tensors: ``images`` float32 (N, C, 28, 28) or (N, C, 28, 28, 28) normalised, ``labels`` int64 (N,)
    for single-label tasks or float32 (N, L) for multi-label."""
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: str | torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


def images_to_tensor(images: np.ndarray, name: str = "images") -> torch.Tensor:
    """uint8 (N, H, W), (N, H, W, C) with C <= 4, or volumes (N, D, H, W) / (N, D, H, W, C) ->
    float32 (N, C, [D,] H, W), scaled to [0, 1] then normalised with MedMNIST's mean/std. Floats
    are taken as already in [0, 1]."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] <= 4:
        array = array.transpose(0, 3, 1, 2)
    elif array.ndim == 4:
        array = array[:, None]
    elif array.ndim == 5 and array.shape[-1] <= 4:
        array = array.transpose(0, 4, 1, 2, 3)
    else:
        raise DataError(f"array '{name}' must be (N, H, W), (N, H, W, C), (N, D, H, W) or (N, D, H, W, C), "
                        f"got shape {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.uint8:
        tensor = tensor.to(torch.float32).div_(255.0)
    else:
        tensor = tensor.to(torch.float32)
    return tensor.sub_(MEAN).div_(STD).contiguous()


def labels_to_tensor(labels: np.ndarray, multi_label: bool, name: str = "labels") -> torch.Tensor:
    array = np.asarray(labels)
    if multi_label:
        return torch.from_numpy(array.reshape(array.shape[0], -1).astype(np.float32))
    if array.ndim == 2 and array.shape[1] != 1:
        raise DataError(f"array '{name}' has shape {array.shape}; a single-label task needs (N,) or (N, 1)")
    return torch.from_numpy(array.reshape(-1).astype(np.int64))


def load_npz(path: str | os.PathLike, splits=SPLITS, multi_label: bool | None = None) -> dict[str, Split]:
    """Reads MedMNIST's ``<split>_images`` / ``<split>_labels`` arrays for the requested splits.
    ``multi_label=None`` infers it: labels with more than one column are multi-label."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"argument 'data': file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"argument 'data': {path} is not a readable npz file ({err})") from None
    out = {}
    with archive:
        for split in splits:
            for kind in ("images", "labels"):
                if f"{split}_{kind}" not in archive.files:
                    raise DataError(f"argument 'data': {path.name} has no array '{split}_{kind}' "
                                    f"(has: {', '.join(archive.files) or 'nothing'})")
            images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
            if images.shape[0] != labels.shape[0]:
                raise DataError(f"argument 'data': {split}_images has {images.shape[0]} samples but "
                                f"{split}_labels has {labels.shape[0]}")
            is_multi = (labels.ndim == 2 and labels.shape[1] > 1) if multi_label is None else multi_label
            out[split] = Split(images_to_tensor(images, f"{split}_images"),
                               labels_to_tensor(labels, is_multi, f"{split}_labels"))
    return out


class BatchLoader:
    """Batches of a Split. With ``workers == 0`` (the fast path) each batch is one index_select of
    the preloaded tensors; ``shuffle`` draws a permutation per epoch from a generator seeded once,
    so runs repeat exactly. ``workers > 0`` hands the same tensors to torch's DataLoader."""

    def __init__(self, split: Split, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
                 workers: int = 0, drop_last: bool = False, device: str | torch.device = "cpu"):
        if batch_size < 1:
            raise ValueError(f"argument 'batch_size' must be >= 1, got {batch_size}")
        if workers < 0:
            raise ValueError(f"argument 'workers' must be >= 0, got {workers}")
        self.split, self.batch_size, self.shuffle = split, int(batch_size), shuffle
        self.workers, self.drop_last, self.device = int(workers), drop_last, torch.device(device)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.workers > 0:
            yield from self._iter_workers()
            return
        n = len(self.split)
        order = torch.randperm(n, generator=self.generator).to(self.split.images.device) if self.shuffle else None
        images, labels = self.split.images, self.split.labels
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min(n, (b + 1) * self.batch_size)
            if order is None:
                x, y = images[lo:hi], labels[lo:hi]
            else:
                idx = order[lo:hi]
                x, y = images.index_select(0, idx), labels.index_select(0, idx)
            if x.device != self.device:
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
            yield x, y

    def _iter_workers(self):
        # workers touch host memory only; the copy to the device happens here, in this process
        host = self.split.to("cpu")
        dataset = torch.utils.data.TensorDataset(host.images, host.labels)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, shuffle=self.shuffle, num_workers=self.workers,
            drop_last=self.drop_last, generator=self.generator, pin_memory=self.device.type == "cuda")
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
