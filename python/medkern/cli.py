"""The ``medkern`` command: train / evaluate / predict on MedMNIST-format data (classification) or
on NIfTI / image-mask folders (segmentation), download datasets, and report what this build
provides (info). Exit codes: 0 ok, 2 usage errors (argparse's
convention, also for missing input files), 1 runtime errors; expected errors print one line on
stderr, never a traceback."""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

__all__ = ["main", "build_parser"]

MODEL_CHOICES = ("seedcnn", "resnet18", "cnn3d", "resnet18_3d", "unet2d", "unet3d")
CLASSIFICATION_DEFAULTS = {"model": "seedcnn", "epochs": 5, "batch_size": 128, "lr": 1e-3}


class UsageError(Exception):
    """A bad argument found after parsing (exit code 2)."""


def _device_arg(value: str) -> str:
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got '{value}'")


def _checked_number(cast, what: str, accept, bound: str, name: str):
    """An argparse ``type``: ``cast`` the text (else "must be <what>"), then ``accept`` it (else
    "must be <bound>")."""
    def parse(value: str):
        try:
            number = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got '{value}'") from None
        if not accept(number):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return number
    parse.__name__ = name
    return parse


_positive_int = _checked_number(int, "an integer", lambda n: n >= 1, ">= 1", "positive integer")
_non_negative_int = _checked_number(int, "an integer", lambda n: n >= 0, ">= 0", "non-negative integer")
_positive_float = _checked_number(float, "a number", lambda n: n > 0 and not math.isinf(n), "a finite number > 0",
                                  "positive number")


def _add_data_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    from .data import DATASETS
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--data", metavar="PATH",
                       help="MedMNIST-format npz (train/val/test _images and _labels arrays); for segmentation "
                            "a decathlon task folder (dataset.json) or an image/mask folder with labels.csv")
    group.add_argument("--dataset", metavar="NAME", type=str.lower, choices=sorted(DATASETS),
                       help="a MedMNIST dataset (2D, or 3D for cnn3d / resnet18_3d), taken from $MEDKERN_DATA (trusted as is) or the cache "
                            "($MEDKERN_CACHE or ~/.cache/medkern), downloaded and md5-checked if missing; "
                            f"one of: {', '.join(DATASETS)}")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="medkern", description="medkern: accelerated kernels and reference "
                                     "training for medical-image classification.")
    parser.add_argument("--version", action="version", version=f"medkern {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train a classifier (MedMNIST npz) or a segmentation U-Net (folder)",
                       description="Classification: train seedcnn or resnet18 (MedMNIST's 28x28 ResNet-18) and "
                                   "write best.pt (best validation AUC), metrics.json and curves.png into --out. "
                                   "Segmentation (--task segmentation): train unet3d/unet2d on patches of a "
                                   "decathlon task or image/mask folder and write best.pt (best validation "
                                   "Dice), metrics.json, curves.png and preview.png.")
    p.add_argument("--task", choices=("classification", "segmentation"), default="classification",
                   help="what to train (default: classification)")
    _add_data_args(p)
    p.add_argument("--model", choices=MODEL_CHOICES, default=None,
                   help="network (default: seedcnn; segmentation: unet3d or unet2d from the data)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="training epochs (default: 5; segmentation: see medkern.segmentation)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="batch size (default: 128; segmentation: 2)")
    p.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default: 1e-3; "
                                                                    "segmentation: 3e-3)")
    seg = p.add_argument_group("segmentation")
    seg.add_argument("--patch", type=_patch_arg, default=None, metavar="DxHxW",
                     help="patch size, e.g. 40x56x40 (default: the median case shape rounded up to the "
                          "network's size divisor)")
    seg.add_argument("--val-fraction", type=float, default=0.2,
                     help="fraction of cases (whole subjects) held out for validation (default: 0.2)")
    seg.add_argument("--features", type=_features_arg, default=None, metavar="F1,F2,...",
                     help="U-Net channels per level (default: 16,32,64,128 on the CPU, 32,64,128,256 on a GPU)")
    seg.add_argument("--iterations", type=_positive_int, default=None,
                     help="steps per epoch (default: training cases / batch size)")
    seg.add_argument("--augment", choices=("default", "none"), default="default",
                     help="fused augmentation on the training device (default: default)")
    seg.add_argument("--max-cases", type=_positive_int, default=None, help="read only the first N cases")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="adam, or sgd with momentum 0.9 (default: adam)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="weight decay (default: 0)")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning-rate schedule: cosine decay to 0 per step, or constant (default: cosine)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and shuffling (default: 0)")
    p.add_argument("--device", type=_device_arg, default="auto",
                   help="auto (a GPU only when usable), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--out", default="runs/medkern", help="output directory (default: runs/medkern)")
    p.add_argument("--workers", type=_non_negative_int, default=0,
                   help="DataLoader worker processes; 0 batches preloaded tensors in-process (default: 0)")
    p.add_argument("--save-last", action="store_true", help="also write last.pt after every epoch")
    p.add_argument("--no-fuse", action="store_true",
                   help="run medkern's layers unfused (default: fused conv+ReLU, norm+activation and, at "
                        "evaluation, BatchNorm folded into convolutions, as medkern.accelerate does)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="classification on a GPU: capture the training step once in a CUDA graph and replay it "
                        "for every full batch (Adam runs with capturable=True)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a checkpoint (AUC/accuracy, or Dice/HD95) or of label maps (JSON)",
                       description="Classification: print {\"auc\", \"acc\", \"split\", \"n\"} as JSON. "
                                   "Segmentation: Dice and HD95 (mm) per class and case and their means, of a "
                                   "checkpoint run on --data DIR, or of label maps in --pred PRED against --ref DIR.")
    p.add_argument("--checkpoint", metavar="PATH.pt", help="a best.pt/last.pt from medkern train")
    _add_data_args(p, required=False)
    p.add_argument("--pred", metavar="DIR", help="label maps (NAME.nii.gz / NAME.png) to score against --ref")
    p.add_argument("--ref", metavar="DIR", help="reference folder (decathlon task or image/mask folder)")
    p.add_argument("--split", choices=("test", "val", "train"), default=None,
                   help="split (default: test; segmentation: every case of --data, or with val / train the "
                        "cases the checkpoint's training held out / trained on)")
    p.add_argument("--tta", action="store_true", help="segmentation: average over mirrored inputs")
    p.add_argument("--device", type=_device_arg, default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.set_defaults(handler=_cmd_evaluate)

    p = sub.add_parser("predict", help="class probabilities, or label maps from a segmentation checkpoint",
                       description="Classification: print class probabilities per image: from --data/--dataset "
                                   "(one split) or from image files (PNG/JPEG; converted to grayscale or RGB to "
                                   "match the model, resized to 28x28 when needed). Segmentation checkpoints: "
                                   "write one label map per INPUT (files or folders of .nii, .nii.gz, .png) into "
                                   "--output-dir, by Gaussian-weighted sliding windows (overlap 0.5).")
    p.add_argument("--checkpoint", required=True, metavar="PATH.pt", help="a best.pt/last.pt from medkern train")
    _add_data_args(p, required=False)
    p.add_argument("images", nargs="*", metavar="INPUT", help="image files (PNG/JPEG); for segmentation also "
                                                              "NIfTI files and folders")
    p.add_argument("--output-dir", metavar="DIR", help="segmentation: where the label maps go")
    p.add_argument("--tta", action="store_true", help="segmentation: average over mirrored inputs")
    p.add_argument("--split", choices=("test", "val", "train"), default="test",
                   help="split of --data/--dataset (default: test)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default: jsonl)")
    p.add_argument("--device", type=_device_arg, default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser("download", help="download MedMNIST datasets into the cache (md5-checked)",
                       description="Download official MedMNIST v2 npz files into $MEDKERN_CACHE or ~/.cache/medkern.")
    from .data import DATASETS
    p.add_argument("names", nargs="+", type=str.lower, choices=sorted(DATASETS), metavar="NAME",
                   help=f"dataset names: {', '.join(DATASETS)}")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_download)

    p = sub.add_parser("info", help="build and machine facts (version, CUDA, SIMD, threads)",
                       description="Print what this build of medkern provides and what this machine has.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_info)

    from .preprocess import add_preprocess_parser, run_preprocess
    add_preprocess_parser(sub).set_defaults(handler=run_preprocess)
    return parser


def _patch_arg(value: str) -> tuple:
    try:
        sizes = tuple(int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be sizes joined by x (e.g. 40x56x40), got '{value}'") from None
    if len(sizes) not in (2, 3) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"must be 2 or 3 positive sizes, got '{value}'")
    return sizes


def _features_arg(value: str) -> tuple:
    try:
        features = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be channel counts joined by commas, got '{value}'") from None
    if len(features) < 2 or min(features) < 1:
        raise argparse.ArgumentTypeError(f"must be at least two positive channel counts, got '{value}'")
    return features


def _require_file(path: str | None, argument: str) -> None:
    if path is not None and not pathlib.Path(path).is_file():
        raise UsageError(f"argument {argument}: file not found: {path}")


def _format_metric(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _cmd_train(args) -> int:
    from .train import TrainConfig, train

    if args.task == "segmentation":
        from .segmentation.cli import train_command
        return train_command(args)
    if args.model in ("unet2d", "unet3d"):
        raise UsageError(f"argument --model: {args.model} is a segmentation network (add --task segmentation)")
    for key, value in CLASSIFICATION_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.cuda_graphs:
        from .train.trainer import resolve_device
        if resolve_device(args.device).type != "cuda":
            raise UsageError(f"argument --cuda-graphs: needs a CUDA device; training would run on "
                             f"{resolve_device(args.device)} (--device {args.device})")
    _require_file(args.data, "--data")
    config = TrainConfig(data=args.data, dataset=args.dataset, model=args.model, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                         weight_decay=args.weight_decay, schedule=args.schedule, seed=args.seed,
                         device=args.device, out=args.out, workers=args.workers, progress=not args.quiet,
                         save_last=args.save_last, fuse=not args.no_fuse, cuda_graphs=args.cuda_graphs)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    m = train(config, log=log)
    out = pathlib.Path(args.out)
    print(f"{m['model']} on {m['dataset']}: best epoch {m['best_epoch']}/{args.epochs}, "
          f"{m['train_seconds']:.1f} s training on {m['device']}")
    print(f"  val   AUC {_format_metric(m['val_auc'])}  ACC {_format_metric(m['val_acc'])}")
    print(f"  test  AUC {_format_metric(m['test_auc'])}  ACC {_format_metric(m['test_acc'])}")
    published = m["published_resnet18_28"]
    if published:
        print(f"  published MedMNIST v2 ResNet-18 (28) test: AUC {published['auc']:.3f}  ACC {published['acc']:.3f}")
    print(f"  wrote {out / 'best.pt'}, {out / 'metrics.json'}, {out / 'curves.png'}")
    return 0


def _cmd_evaluate(args) -> int:
    from .train import evaluate_checkpoint
    from .train.trainer import json_safe

    if args.pred is not None or args.ref is not None:
        from .segmentation.cli import evaluate_label_maps_command
        return evaluate_label_maps_command(args)
    if args.checkpoint is None:
        raise UsageError("give --checkpoint (with --data/--dataset), or --pred and --ref")
    _require_file(args.checkpoint, "--checkpoint")
    if _checkpoint_task(args.checkpoint) == "segmentation":
        from .segmentation.cli import evaluate_checkpoint_command
        return evaluate_checkpoint_command(args)
    if args.data is None and args.dataset is None:
        raise UsageError("give --data or --dataset")
    _require_file(args.data, "--data")
    result = evaluate_checkpoint(args.checkpoint, args.data, args.dataset, args.split or "test", args.device)
    print(json.dumps(json_safe(result)))
    return 0


def _read_image(path: str, channels: int):
    """An image file as float32 (C, H, W) in [0, 1]; PIL when installed, else matplotlib."""
    import numpy as np
    try:
        from PIL import Image
        with Image.open(path) as img:
            array = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    except ImportError:
        import matplotlib.image
        array = np.asarray(matplotlib.image.imread(path), dtype=np.float32)
        if array.max() > 1.0:
            array = array / 255.0
        if array.ndim == 3:
            array = array[..., :3]
            if channels == 1:
                array = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        elif channels == 3:
            array = np.repeat(array[..., None], 3, axis=2)
    except OSError as err:
        raise RuntimeError(f"argument IMAGE: cannot read {path}: {err}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _images_tensor(paths: list[str], channels: int, normalization: dict):
    import torch
    import torch.nn.functional as F

    batch = []
    for path in paths:
        _require_file(path, "IMAGE")
        image = torch.from_numpy(_read_image(path, channels).copy())
        if image.shape[-2:] != (28, 28):
            image = F.interpolate(image[None], size=(28, 28), mode="bilinear", antialias=True,
                                  align_corners=False)[0]
        batch.append(image)
    images = torch.stack(batch)
    return (images - normalization["mean"]) / normalization["std"]


def _cmd_predict(args) -> int:
    import torch

    from .train import load_checkpoint, open_dataset, predict_logits, scores_from_logits
    from .train.trainer import resolve_device

    _require_file(args.checkpoint, "--checkpoint")
    if _checkpoint_task(args.checkpoint) == "segmentation":
        from .segmentation.cli import predict_command
        return predict_command(args)
    has_data = args.data is not None or args.dataset is not None
    if has_data == bool(args.images):
        raise UsageError("give either --data/--dataset or IMAGE files (one of them)")
    _require_file(args.data, "--data")
    model, meta = load_checkpoint(args.checkpoint, resolve_device(args.device))
    if has_data:
        spec, splits = open_dataset(args.data, args.dataset, splits=(args.split,))
        if spec.in_channels != meta["in_channels"]:
            raise RuntimeError(f"argument --data: images have {spec.in_channels} channels but the model "
                               f"expects {meta['in_channels']}")
        images = splits[args.split].images
        names = [f"{args.split}[{i}]" for i in range(len(images))]
    else:
        from .models import VOLUME_CLASSIFIERS
        if meta["model"] in VOLUME_CLASSIFIERS:
            raise UsageError(f"a {meta['model']} checkpoint predicts from --data/--dataset (28x28x28 volumes), "
                             f"not from image files")
        images = _images_tensor(args.images, meta["in_channels"], meta["normalization"])
        names = list(args.images)
    probabilities = scores_from_logits(predict_logits(model, images).float(), meta["task"]).cpu()
    classes = probabilities.shape[1]
    lines = []
    if args.format == "csv":
        lines.append(",".join(["image"] + [f"p{c}" for c in range(classes)] + ["predicted"]))
    for name, row in zip(names, probabilities.tolist()):
        predicted = int(torch.tensor(row).argmax())
        if args.format == "csv":
            quoted = '"' + name.replace('"', '""') + '"' if ("," in name or '"' in name) else name
            lines.append(",".join([quoted] + [f"{p:.6g}" for p in row] + [str(predicted)]))
        else:
            lines.append(json.dumps({"image": name, "probabilities": row, "predicted": predicted}))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _checkpoint_task(path: str) -> str | None:
    """The ``task`` recorded in a checkpoint (None when unreadable: load_checkpoint then says why)."""
    import torch
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - reported by load_checkpoint with its own message
        return None
    return payload.get("task") if isinstance(payload, dict) else None


def _cmd_download(args) -> int:
    from .data import cache_dir, download

    for name in args.names:
        path = download(name, cache_dir(), progress=not args.quiet and sys.stderr.isatty())
        print(path)
    return 0


def _cmd_info(args) -> int:
    from . import info

    facts = info()
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
        return 0
    width = max(len(str(k)) for k in facts) if facts else 0
    for key, value in facts.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value) or "none"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        print(f"{str(key).ljust(width)}  {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(stop.code or 0) if not isinstance(stop.code, str) else 2
    from .data import DataError
    from .train import CheckpointError
    try:
        return args.handler(args)
    except UsageError as err:
        print(f"medkern {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (DataError, CheckpointError, ValueError, RuntimeError, OSError) as err:
        print(f"medkern {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"medkern {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
