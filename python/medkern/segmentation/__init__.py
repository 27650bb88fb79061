"""Segmentation end to end: training data (cases in memory, planned patches, foreground
oversampling), Dice + cross-entropy loss, sliding-window inference, Dice / HD95 metrics, and
the U-Net trainer behind ``medkern train --task segmentation``."""
from .data import SegmentationData, open_segmentation_data, split_by_subject
from .inference import gaussian_importance, sliding_window, window_starts
from .losses import DiceCELoss, deep_supervision_weights
from .metrics import dice_per_class, hd95_per_class, mean_ignoring_nan, soft_dice_score
from .patches import CaseArrays, PatchSampler, plan_patch, prepare_case, zscore
from .trainer import SegmentationConfig, augmentation_pipeline, gamma_retain_stats, train_segmentation

__all__ = ["SegmentationData", "open_segmentation_data", "split_by_subject", "sliding_window",
           "gaussian_importance", "window_starts", "DiceCELoss", "deep_supervision_weights", "dice_per_class",
           "hd95_per_class", "mean_ignoring_nan", "soft_dice_score", "CaseArrays", "PatchSampler", "plan_patch",
           "prepare_case", "zscore", "SegmentationConfig", "augmentation_pipeline", "gamma_retain_stats",
           "train_segmentation"]
