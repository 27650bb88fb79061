"""GPU benchmark cases: medkern's CUDA kernels against torch (cuDNN for convolution, with torch's
defaults: TF32 allowed for convolutions) at batch 128. Convolutions are the layers of the seed
CNN and of ResNet-18 at 28x28 (MedMNIST variant: 3x3 stem, no max-pool) and 224x224 (the
standard layer shapes), and the 3-D U-Net / MONAI UNet layers of cases_conv3d.py; pooling, batch
norm, relu and the 3-D U-Net's instance / group norm + activation carry the bytes they must move
so the driver can report achieved bandwidth."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

try:  # benchmarks/run.py puts benchmarks/ itself on sys.path
    from common import BenchCase
except ImportError:
    from benchmarks.common import BenchCase


@dataclasses.dataclass
class CudaBenchCase(BenchCase):
    bytes_moved: int = 0        # compulsory traffic of one call (memory-bound ops), else 0
    flops: float = 0.0          # multiply-adds x 2 of one call (convolutions), else 0


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    name: str
    c_in: int
    c_out: int
    size: int          # input height = width
    kernel: int
    stride: int = 1
    padding: int = 0
    first: bool = False  # the network's input layer: no input gradient in training


def _seed_cnn_layers() -> list[ConvLayer]:
    """Conv layers of medkern.models.SeedCNN found by tracing a 28x28 input; a fixed stand-in
    (three 3x3 convs, 32/64/128 channels, halving by pooling) while that model is not in the tree."""
    try:
        from medkern.models import SeedCNN
        model = SeedCNN()
        in_shape = tuple(getattr(model, "input_shape", (1, 28, 28)))
        layers: list[ConvLayer] = []

        def hook(mod, inputs, _out, name):
            x = inputs[0]
            layers.append(ConvLayer(f"seedcnn.{name}", mod.in_channels, mod.out_channels, x.shape[-1],
                                    mod.kernel_size[0], mod.stride[0],
                                    mod.padding[0] if isinstance(mod.padding, tuple) else 0, first=not layers))

        handles = [m.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
                   for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
        with torch.no_grad():
            model.eval()(torch.zeros(2, *in_shape))
        for h in handles:
            h.remove()
        if layers:
            return layers
    except Exception:  # the model is not there yet, or traces differently: use the stand-in
        pass
    return [ConvLayer("seedcnn.conv1", 1, 32, 28, 3, 1, 1, first=True),
            ConvLayer("seedcnn.conv2", 32, 64, 14, 3, 1, 1),
            ConvLayer("seedcnn.conv3", 64, 128, 7, 3, 1, 1)]


def _resnet18_layers(size: int, c_in: int) -> list[ConvLayer]:
    """One entry per distinct conv shape of ResNet-18 (repeated blocks are timed once)."""
    p = f"resnet18@{size}"
    if size >= 64:   # standard: 7x7/2 stem + 3x3/2 max-pool -> 56 for a 224 input
        layers = [ConvLayer(f"{p}.conv1", c_in, 64, size, 7, 2, 3, first=True)]
        s = size // 4
    else:            # MedMNIST-style: 3x3/1 stem, no max-pool
        layers = [ConvLayer(f"{p}.conv1", c_in, 64, size, 3, 1, 1, first=True)]
        s = size
    layers.append(ConvLayer(f"{p}.layer1.conv", 64, 64, s, 3, 1, 1))
    c = 64
    for stage in (2, 3, 4):
        layers += [ConvLayer(f"{p}.layer{stage}.0.conv1", c, 2 * c, s, 3, 2, 1),
                   ConvLayer(f"{p}.layer{stage}.0.downsample", c, 2 * c, s, 1, 2, 0)]
        s = (s + 1) // 2
        c *= 2
        layers.append(ConvLayer(f"{p}.layer{stage}.conv", c, c, s, 3, 1, 1))
    return layers


def conv_layers() -> list[ConvLayer]:
    return _seed_cnn_layers() + _resnet18_layers(28, 1) + _resnet18_layers(224, 3)


def _conv_cases(layer: ConvLayer, device: str, batch: int) -> list[CudaBenchCase]:
    import medkern.ops as mops

    x = torch.randn(batch, layer.c_in, layer.size, layer.size, device=device)
    w = torch.randn(layer.c_out, layer.c_in, layer.kernel, layer.kernel, device=device) * 0.05
    b = torch.randn(layer.c_out, device=device)
    kw = dict(stride=layer.stride, padding=layer.padding)
    out_size = (layer.size + 2 * layer.padding - layer.kernel) // layer.stride + 1
    flops = 2.0 * batch * layer.c_out * out_size * out_size * layer.c_in * layer.kernel ** 2
    shape = (f"N{batch} C{layer.c_in}->{layer.c_out} {layer.size}x{layer.size} k{layer.kernel} "
             f"s{layer.stride} p{layer.padding}")

    def fwd(fn):
        def run():
            with torch.no_grad():
                return fn(x, w, b, **kw)
        return run

    xg = x.clone().requires_grad_(not layer.first)
    wg, bg = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    g = torch.randn(batch, layer.c_out, out_size, out_size, device=device)
    wanted = (wg, bg) if layer.first else (xg, wg, bg)

    def fwd_bwd(fn):
        def run():
            out = fn(xg, wg, bg, **kw)
            return torch.autograd.grad(out, wanted, g)
        return run

    return [CudaBenchCase("conv2d fwd", layer.name, shape, fwd(mops.conv2d), fwd(F.conv2d), "cuDNN", device,
                          flops=flops),
            CudaBenchCase("conv2d fwd+bwd", layer.name, shape, fwd_bwd(mops.conv2d), fwd_bwd(F.conv2d), "cuDNN",
                          device, flops=flops * (2 if layer.first else 3))]


def _memory_cases(device: str, batch: int) -> list[CudaBenchCase]:
    import medkern.ops as mops

    cases: list[CudaBenchCase] = []
    # ResNet-18@224 stem output: max-pool 3x3/2; traffic = input read once + output and int64
    # indices written (backward: output gradient and indices read, input gradient written)
    x = torch.randn(batch, 64, 112, 112, device=device)
    size = x.numel() * 4
    out_numel = batch * 64 * 56 * 56
    xg = x.clone().requires_grad_(True)
    gp = torch.randn(batch, 64, 56, 56, device=device)
    cases.append(CudaBenchCase("max_pool2d fwd", "resnet18@224.maxpool", "N128 C64 112x112 k3 s2 p1",
                               lambda: mops.max_pool2d(x, 3, 2, 1), lambda: F.max_pool2d(x, 3, 2, 1), "torch",
                               device, bytes_moved=size + out_numel * 12))
    cases.append(CudaBenchCase(
        "max_pool2d fwd+bwd", "resnet18@224.maxpool", "N128 C64 112x112 k3 s2 p1",
        lambda: torch.autograd.grad(mops.max_pool2d(xg, 3, 2, 1), xg, gp),
        lambda: torch.autograd.grad(F.max_pool2d(xg, 3, 2, 1), xg, gp), "torch", device,
        bytes_moved=2 * (size + out_numel * 12)))
    # seed CNN style 2x2 average pool
    y = torch.randn(batch, 64, 56, 56, device=device)
    cases.append(CudaBenchCase("avg_pool2d fwd", "avgpool2x2", "N128 C64 56x56 k2 s2",
                               lambda: mops.avg_pool2d(y, 2, 2), lambda: F.avg_pool2d(y, 2, 2), "torch", device,
                               bytes_moved=y.numel() * 4 * 5 // 4))
    # batch norm, training mode, counted as the traffic of the two-pass algorithm that both
    # libraries run: forward reads x twice (statistics, normalization) and writes y; backward
    # reads dy and x twice (sums, input gradient) and writes dx
    for shape, label in (((batch, 64, 112, 112), "resnet18@224.bn1"), ((batch, 256, 14, 14), "resnet18@224.layer3.bn"),
                         ((batch, 64, 28, 28), "resnet18@28.bn")):
        t = torch.randn(*shape, device=device)
        c = shape[1]
        w, b = torch.ones(c, device=device), torch.zeros(c, device=device)
        rm, rv = torch.zeros(c, device=device), torch.ones(c, device=device)
        tg = t.clone().requires_grad_(True)
        wg, bg = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
        gb = torch.randn(*shape, device=device)
        nbytes = t.numel() * 4
        text = "N{} C{} {}x{}".format(*shape)
        cases.append(CudaBenchCase("batch_norm fwd (train)", label, text,
                                   lambda t=t, w=w, b=b, rm=rm, rv=rv: mops.batch_norm(t, rm, rv, w, b, True),
                                   lambda t=t, w=w, b=b, rm=rm, rv=rv: F.batch_norm(t, rm, rv, w, b, True),
                                   "torch", device, bytes_moved=3 * nbytes))
        cases.append(CudaBenchCase(
            "batch_norm fwd+bwd (train)", label, text,
            lambda tg=tg, wg=wg, bg=bg, rm=rm, rv=rv, gb=gb: torch.autograd.grad(
                mops.batch_norm(tg, rm, rv, wg, bg, True), (tg, wg, bg), gb),
            lambda tg=tg, wg=wg, bg=bg, rm=rm, rv=rv, gb=gb: torch.autograd.grad(
                F.batch_norm(tg, rm, rv, wg, bg, True), (tg, wg, bg), gb),
            "torch", device, bytes_moved=8 * nbytes))
    # instance norm + LeakyReLU of a 3-D U-Net on Hippocampus patches (batch 2, 40x56x40): the
    # fused layer reads x once forward (writes y) and dy, x twice backward (writes dx); torch's
    # two modules move about twice that
    import copy

    import medkern.nn
    for c, spatial in ((32, (40, 56, 40)), (128, (10, 14, 10))):
        shape = (2, c, *spatial)
        norm = torch.nn.InstanceNorm3d(c, affine=True).to(device)
        peer = torch.nn.Sequential(norm, torch.nn.LeakyReLU(0.01, inplace=True))
        fused = medkern.nn.fuse_norm_act(copy.deepcopy(norm), torch.nn.LeakyReLU(0.01))
        t = torch.randn(*shape, device=device, requires_grad=True)
        gy = torch.randn(*shape, device=device)
        nbytes = t.numel() * 4
        text = "N2 C{} {}x{}x{}".format(c, *spatial)
        cases.append(CudaBenchCase("instance_norm3d+leaky fwd+bwd", f"unet3d.c{c}", text,
                                   lambda t=t, f=fused, g=gy: torch.autograd.grad(f(t), (t, *f.parameters()), g),
                                   lambda t=t, p=peer, g=gy: torch.autograd.grad(p(t), (t, *p.parameters()), g),
                                   "torch", device, bytes_moved=7 * nbytes))
        cases.append(CudaBenchCase("group_norm(8)+relu fwd", f"unet3d.c{c}", text,
                                   lambda t=t, c=c: mops.group_norm(t.detach(), 8, activation="relu"),
                                   lambda t=t: F.relu(F.group_norm(t.detach(), 8)), "torch", device,
                                   bytes_moved=3 * nbytes))
    cases.append(CudaBenchCase("relu fwd", "resnet18@224.relu", "N128 C64 112x112", lambda: mops.relu(x),
                               lambda: F.relu(x), "torch", device, bytes_moved=2 * size))
    return cases


def _conv3d_cases(device: str) -> list[CudaBenchCase]:
    """The 3-D U-Net and MONAI UNet layers of cases_conv3d.py (batch 2, 40x56x40 patches)."""
    try:  # benchmarks/run.py puts benchmarks/ itself on sys.path
        import cases_conv3d
    except ImportError:
        from benchmarks import cases_conv3d
    out: list[CudaBenchCase] = []
    for layer in cases_conv3d.layers():
        out += cases_conv3d.layer_cases(layer, cases_conv3d.BATCH, device, CudaBenchCase, peer_name="cuDNN")
    return out


def cases(device: str = "cuda", batch: int = 128) -> list[CudaBenchCase]:
    out: list[CudaBenchCase] = []
    for layer in conv_layers():
        out += _conv_cases(layer, device, batch)
    return out + _conv3d_cases(device) + _memory_cases(device, batch)
