"""Training, evaluation, metrics (MedMNIST's AUC/ACC), checkpoints and training-curve plots for the
reference networks."""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .cuda_graph import GraphedTrainStep, make_capturable_optimizer
from .metrics import auc_accuracy, scores_from_logits
from .plots import plot_curves
from .trainer import (DatasetSpec, TrainConfig, evaluate_checkpoint, evaluate_split, make_loss, make_optimizer,
                      open_dataset, predict_logits, train, train_one_epoch)

__all__ = ["TrainConfig", "DatasetSpec", "train", "train_one_epoch", "evaluate_split", "evaluate_checkpoint",
           "predict_logits", "open_dataset", "make_optimizer", "make_loss", "auc_accuracy",
           "scores_from_logits", "save_checkpoint", "load_checkpoint", "CheckpointError", "plot_curves",
           "GraphedTrainStep", "make_capturable_optimizer"]
