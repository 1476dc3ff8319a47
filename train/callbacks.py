"""Training callbacks: resume from a backup, divergence, per-epoch random streams, epoch lines."""
from __future__ import annotations

import json
import math
import os
import time

import keras
import numpy as np
from absl import logging

from tandem_keras.export import non_finite_weights


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

    With ``per_epoch=False`` (a Keras progress bar reports the epochs) only the resume line
    is logged.
    """

    def __init__(self, epochs: int, per_epoch: bool = True):
        super().__init__()
        self.epochs = epochs
        self.per_epoch = per_epoch
        self._start = 0.0

    def on_train_begin(self, logs=None):
        initial = getattr(self.model, "_initial_epoch", None) or 0
        if initial:
            logging.info("resuming from epoch %d/%d (restored from backup)", initial, self.epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if not self.per_epoch:
            return
        # Per-layer activity (``spike_count/<layer>``, ...) goes to TensorBoard and history.csv.
        items = " ".join(f"{k}={float(v):.4g}" for k, v in sorted((logs or {}).items())
                         if k != "learning_rate" and "/" not in k)
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


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; ``str()`` is the one-line message."""


class StopOnDivergence(keras.callbacks.Callback):
    """Stops ``fit`` with :class:`TrainingDiverged` at the first non-finite loss or weight.

    Like ``keras.callbacks.TerminateOnNaN``, but it raises instead of letting the epoch
    end: put it *first* in the callback list and no later callback's ``on_epoch_end``
    runs for the diverged epoch, so ``BackupAndRestore`` keeps the last good epoch's backup
    and ``CSVLogger`` / ``TensorBoard`` record no NaN epoch. The loss is checked after
    every batch (it is a scalar Keras has already computed), the weights at every epoch
    end before anything is saved (one reduction per variable).
    """

    def __init__(self, backup_dir: str | None = None):
        super().__init__()
        self.backup_dir = backup_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None:
            value = float(np.asarray(keras.ops.convert_to_numpy(loss)).reshape(-1)[0])
            if not math.isfinite(value):
                self._diverged(f"the loss is {value} at epoch {self._epoch + 1} step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        bad = non_finite_weights(self.model)
        if bad:
            self._diverged(f"weight {bad[0]} is not finite after epoch {epoch + 1}")
        for name, value in sorted((logs or {}).items()):
            if isinstance(value, (int, float, np.floating)) and not math.isfinite(float(value)):
                self._diverged(f"{name} is {float(value)} at epoch {epoch + 1}")

    def _diverged(self, what: str) -> None:
        kept = "nothing exported"
        if self.backup_dir and os.path.exists(os.path.join(self.backup_dir, "latest.weights.h5")):
            kept = f"the backup of epoch {resume_epoch(self.backup_dir)} in {self.backup_dir} is kept, " + kept
        raise TrainingDiverged(f"training diverged: {what}; {kept} (lower --learning_rate and "
                               "rerun to resume from the backup)")


class SetLearningRate(keras.callbacks.Callback):
    """Puts ``--learning_rate`` back after ``BackupAndRestore`` restored the recorded one.

    With a constant rate the optimizer keeps it in a variable that the backup holds; a run
    resumed with another ``--learning_rate`` must train with the new one. (Schedules are
    not variables: they are rebuilt from the flags.)
    """

    def __init__(self, learning_rate):
        super().__init__()
        self.learning_rate = learning_rate

    def on_train_begin(self, logs=None):
        if isinstance(self.learning_rate, float):
            self.model.optimizer.learning_rate = self.learning_rate
