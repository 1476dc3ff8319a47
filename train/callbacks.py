"""Training callbacks: divergence, per-epoch random streams, epoch lines."""
from __future__ import annotations

import contextlib
import math
import time

import keras
import numpy as np
from absl import logging

from tandem_keras.export import non_finite_weights
from train import backup


class EpochSummary(keras.callbacks.Callback):
    """Logs one line per epoch with ``absl.logging``: metrics, learning rate and duration.

    Example line: ``epoch 3/150: loss=0.8123 top1=0.7102 top5=0.9801 val_loss=0.9 ... lr=0.001 (41.2s)``

    ``python -m train`` uses it off a terminal, where no Keras progress bar reports the epochs.
    """

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        # Per-layer activity (``spike_count/<layer>``, ...) goes to TensorBoard and history.csv.
        items = " ".join(f"{k}={float(v):.4g}" for k, v in sorted((logs or {}).items())
                         if k != "learning_rate" and "/" not in k)
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logging.info("epoch %d/%d: %s lr=%.3g (%.1fs)", epoch + 1, self.epochs, items, lr,
                     time.time() - self._start)


class EpochSeeds(keras.callbacks.Callback):
    """Makes the random layers' streams (``Dropout``) a function of the epoch.

    Keras keeps each ``SeedGenerator``'s counter outside the saved weights, so a run
    resumed from its backup would replay epoch 0's dropout masks. At the start
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
    runs for the diverged epoch, so ``train.backup.Backup`` keeps the last good epoch's
    backup and ``CSVLogger`` / ``TensorBoard`` record no NaN epoch. The loss is checked after
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
        epochs = backup.epochs_done(self.backup_dir) if self.backup_dir else 0
        if epochs:
            kept = f"the backup of epoch {epochs} in {self.backup_dir} is kept, " + kept
        raise TrainingDiverged(f"training diverged: {what}; {kept} (lower --learning_rate and "
                               "rerun to resume from the backup)")


class TrainedWeights(keras.callbacks.Callback):
    """Keeps the trained weights of the last epoch, so that they can be put back after ``fit``
    ended by writing the optimizer's moving average over them (``use_ema``).

    Example:
      >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
      >>> model.compile(keras.optimizers.SGD(0.1, use_ema=True), "mse")
      >>> trained = TrainedWeights()
      >>> _ = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, verbose=0, callbacks=[trained])
      >>> averaged = model.get_weights()
      >>> trained.restore()
      >>> any(not np.allclose(a, b) for a, b in zip(averaged, model.get_weights()))
      True
    """

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.weights = [w.numpy() for w in self.model.trainable_weights]

    def restore(self) -> None:
        for w, value in zip(self.model.trainable_weights, self.weights):
            w.assign(value)


@contextlib.contextmanager
def moving_average_in(model: keras.Model):
    """Within the block, ``model``'s trainable weights are its optimizer's moving average (what
    ``fit`` ends with under ``use_ema``), the trained weights back after; without ``use_ema``
    the model is left as it is.

    Example:
      >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
      >>> model.compile(keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), "mse")
      >>> _ = model.train_on_batch(np.ones((4, 2)), np.ones((4, 1)))
      >>> _ = model.train_on_batch(np.ones((4, 2)), np.ones((4, 1)))
      >>> trained = model.get_weights()
      >>> with moving_average_in(model):
      ...     averaged = model.get_weights()
      >>> any(not np.allclose(a, t) for a, t in zip(averaged, trained))
      True
      >>> all(np.array_equal(w, t) for w, t in zip(model.get_weights(), trained))
      True
    """
    if not model.optimizer.use_ema:
        yield
        return
    weights = model.trainable_weights
    trained = [w.numpy() for w in weights]
    model.optimizer.finalize_variable_values(weights)
    try:
        yield
    finally:
        for w, value in zip(weights, trained):
            w.assign(value)
