"""Training callbacks: resume from a backup, per-epoch random streams, one log line per epoch."""
from __future__ import annotations

import json
import os
import time

import keras
from absl import logging


def resume_epoch(backup_dir: str) -> int:
    """The epoch ``keras.callbacks.BackupAndRestore(backup_dir)`` will resume from (0: none).

    The input pipeline needs it before ``fit`` starts so that a resumed run sees the same
    batches as an uninterrupted one (``train.pipeline``). Reads the metadata file that
    ``BackupAndRestore`` writes next to its weights.
    """
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(os.path.join(backup_dir, "latest.weights.h5")) or not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


class EpochSummary(keras.callbacks.Callback):
    """Logs one line per epoch with ``absl.logging``: metrics, learning rate and duration.

    Example line: ``epoch 3/150: loss=0.8123 top1=0.7102 top5=0.9801 val_loss=0.9 ... lr=0.001 (41.2s)``
    """

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self._start = 0.0

    def on_train_begin(self, logs=None):
        initial = getattr(self.model, "_initial_epoch", None) or 0
        if initial:
            logging.info("resuming from epoch %d/%d (restored from backup)", initial, self.epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        items = " ".join(f"{k}={float(v):.4g}" for k, v in sorted((logs or {}).items())
                         if k != "learning_rate")
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logging.info("epoch %d/%d: %s lr=%.3g (%.1fs)", epoch + 1, self.epochs, items, lr,
                     time.time() - self._start)


class EpochSeeds(keras.callbacks.Callback):
    """Makes the random layers' streams (``Dropout``) a function of the epoch.

    Keras keeps each ``SeedGenerator``'s counter outside the saved weights, so a run
    resumed from ``BackupAndRestore`` would replay epoch 0's dropout masks. At the start
    of epoch ``e`` every generator's counter is set to ``e * 2**20`` (its seed is kept),
    so a resumed epoch draws exactly the masks of the uninterrupted run.
    """

    STRIDE = 2**20  # random draws per layer and epoch before two epochs' streams overlap

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model.layers:
            for value in vars(layer).values():
                if isinstance(value, keras.random.SeedGenerator):
                    state = value.state
                    seed = keras.ops.convert_to_numpy(state)[0]
                    state.assign(keras.ops.convert_to_tensor([seed, epoch * self.STRIDE],
                                                             dtype=state.dtype))
