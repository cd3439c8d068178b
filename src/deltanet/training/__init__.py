"""Training: the loop, its history, callbacks, stopping criteria, progress display and checkpoints.

>>> trainer = Trainer(net, loss="cross_entropy", optimizer="adam", epochs=20, early_stopping=True)  # doctest: +SKIP
>>> history = trainer.fit(X, y, validation_fraction=0.1)                                           # doctest: +SKIP
>>> history.stop_reason, history["val_loss"][-1]                                                    # doctest: +SKIP
"""

from .callbacks import Callback, CallbackList, ModelCheckpoint
from .checkpoint import load_state, save_state
from .data import validation_split
from .history import RECORD_KEYS, STOP_REASONS, History
from .metrics import accuracy, dead_fractions, infer_task, unit_health, update_ratios
from .progress import ProgressBar
from .stopping import EarlyStopping, GradNormThreshold, LossThreshold
from .trainer import Trainer

__all__ = [
    "RECORD_KEYS", "STOP_REASONS", "Callback", "CallbackList", "EarlyStopping", "GradNormThreshold", "History",
    "LossThreshold", "ModelCheckpoint", "ProgressBar", "Trainer", "accuracy", "dead_fractions", "infer_task", "unit_health",
    "update_ratios",
    "load_state", "save_state", "validation_split",
]
