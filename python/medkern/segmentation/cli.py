"""The segmentation side of the ``medkern`` command: ``train --task segmentation``, ``predict``
with a segmentation checkpoint, and ``evaluate`` of a checkpoint or of label-map folders. The
defaults it picks (model from the data's dimensionality, patch from the median case shape,
features by device) are printed before training starts."""
from __future__ import annotations

import json
import sys

__all__ = ["train_command", "predict_command", "evaluate_checkpoint_command", "evaluate_label_maps_command",
           "DEFAULTS", "default_features"]

DEFAULTS = {"epochs": 30, "batch_size": 2, "lr": 3e-3}
# nnU-Net's published Dice on MSD Task04 (anterior, posterior), printed beside ours
PUBLISHED = {"hippocampus": {"Anterior": 0.90, "Posterior": 0.89}}


def default_features(device) -> tuple:
    """32-64-128-256 on a GPU (nnU-Net's), 16-32-64-128 on the CPU (a quarter of the work per step)."""
    return (32, 64, 128, 256) if str(device).startswith("cuda") else (16, 32, 64, 128)


def _log(args):
    quiet = getattr(args, "quiet", False)
    return (lambda message: None) if quiet else (lambda message: print(message, file=sys.stderr, flush=True))


def train_command(args) -> int:
    from ..cli import UsageError
    from ..train.trainer import json_safe, resolve_device
    from .trainer import SegmentationConfig, train_segmentation

    if args.data is None:
        raise UsageError("argument --data: segmentation needs a folder (--data DIR)")
    if args.model is not None and args.model not in ("unet2d", "unet3d"):
        raise UsageError(f"argument --model: segmentation trains unet2d or unet3d, got {args.model}")
    if getattr(args, "cuda_graphs", False):
        raise UsageError("argument --cuda-graphs: CUDA graphs serve classification training (segmentation patches "
                         "are sampled and augmented per step on the host)")
    device = resolve_device(args.device)
    config = SegmentationConfig(
        data=args.data, model=args.model, out=args.out if args.out != "runs/medkern" else "runs/segmentation",
        epochs=args.epochs or DEFAULTS["epochs"], batch_size=args.batch_size or DEFAULTS["batch_size"],
        patch=args.patch, iterations=args.iterations, features=args.features or default_features(device),
        lr=args.lr or DEFAULTS["lr"], val_fraction=args.val_fraction, seed=args.seed, device=str(device),
        augment=args.augment, max_cases=args.max_cases, progress=not args.quiet,
        accelerate=not getattr(args, "no_fuse", False))
    log = _log(args)
    fused = "fused norm+activation (accelerate)" if config.accelerate else "accelerate's fusions off (--no-fuse)"
    log(f"medkern train --task segmentation: medkern kernels, {fused}, "
        f"{config.epochs} epochs, batch {config.batch_size}, lr {config.lr:g}, features {config.features}, "
        f"seed {config.seed}")
    m = train_segmentation(config, log=log)
    print(f"{m['model']} on {m['dataset']}: best epoch {m['best_epoch']}/{config.epochs}, "
          f"{m['train_seconds']:.1f} s training on {m['device']}")
    per_class = ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a"
                          for k, v in json_safe(m["val_dice_per_class"]).items())
    print(f"  val Dice {m['val_dice']:.3f} ({per_class})")
    published = PUBLISHED.get(str(m["dataset"]).lower())
    if published:
        print(f"  published nnU-Net (MSD Task04): {', '.join(f'{k} {v:.2f}' for k, v in published.items())}")
    print(f"  wrote {config.out}/best.pt, metrics.json, curves.png, preview.png")
    return 0


def predict_command(args) -> int:
    from ..cli import UsageError
    from ..train import load_checkpoint
    from ..train.trainer import resolve_device
    from .predict import predict_files

    if not args.images:
        raise UsageError("give INPUT files or folders (.nii, .nii.gz, .png) to segment")
    if args.output_dir is None:
        raise UsageError("argument --output-dir: required with a segmentation checkpoint")
    device = resolve_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, device)
    written, errors = predict_files(model, meta, args.images, args.output_dir, mirror=args.tta, device=device,
                                    log=_log(args), progress=sys.stderr.isatty())
    for path in written:
        print(path)
    if errors:
        print(f"medkern predict: {len(errors)} input(s) failed: " + "; ".join(errors), file=sys.stderr)
    return 1 if errors and not written else 0


def evaluate_label_maps_command(args) -> int:
    from ..cli import UsageError
    from ..train.trainer import json_safe
    from .evaluate import evaluate_label_maps

    if args.pred is None or args.ref is None:
        raise UsageError("give both --pred DIR and --ref DIR")
    print(json.dumps(json_safe(evaluate_label_maps(args.pred, args.ref, log=_log(args)))))
    return 0


def evaluate_checkpoint_command(args) -> int:
    from ..cli import UsageError
    from ..train import load_checkpoint
    from ..train.trainer import json_safe, resolve_device
    from .data import open_segmentation_data, split_by_subject
    from .evaluate import evaluate_predictions
    from .predict import predict_case, tta_mirror

    if args.data is None:
        raise UsageError("argument --data: give the folder of cases to evaluate the segmentation checkpoint on")
    device = resolve_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, device)
    norm = meta["normalization"]
    train_args = meta.get("args", {})
    # with --split, read the cases as the training did (its --max-cases), so the split is the same
    data = open_segmentation_data(args.data, log=_log(args),
                                  max_cases=train_args.get("max_cases") if args.split is not None else None)
    if data.spatial_dims != int(norm["spatial_dims"]):
        raise ValueError(f"argument --data: {data.spatial_dims}-D cases, the checkpoint's model is "
                         f"{norm['spatial_dims']}-D")
    cases = data.cases
    if args.split is not None:  # the checkpoint's own split of these cases (same seed and fraction)
        if args.split == "test":
            raise UsageError("argument --split: segmentation data has no test split; give val (the cases the "
                             "training held out) or train, or leave --split out for every case")
        train_idx, val_idx = split_by_subject(data.subjects, float(train_args.get("val_fraction", 0.2)),
                                              int(train_args.get("seed", 0)))
        cases = [data.cases[i] for i in (val_idx if args.split == "val" else train_idx)]
    items = []
    for case in cases:
        # the cases are already z-scored; predict_case z-scores again, which leaves them unchanged
        label = predict_case(model, case.image, norm["patch"], int(meta["num_classes"]), data.spatial_dims,
                             mirror=tta_mirror(meta, bool(getattr(args, "tta", False))), device=device)
        items.append((case.name, label, case.label, case.spacing))
    class_names = {int(k): v for k, v in norm["class_names"].items()}
    print(json.dumps(json_safe({**evaluate_predictions(items, class_names), "n": len(items),
                                "split": args.split or "all", "tta": bool(getattr(args, "tta", False)),
                                "skipped": [str(e) for e in data.skipped]})))
    return 0
