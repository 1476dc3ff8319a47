"""One run of the CIFAR-10 reproduction: ``train.recipe``'s compiled model, trained on a
budget's data with a per-epoch validation monitor, and its evaluation helpers.

Example:
  >>> tie_fraction(np.array([[2.0, 2.0, 0.0], [1.0, 3.0, 0.0]]))
  0.5
"""
from __future__ import annotations

import time
from typing import Optional

from absl import logging
import keras
import numpy as np

from tandem_keras import analysis
from bench.cifar10_budgets import Config, recipe_values, train_dataset
from train import recipe


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``model(x)`` in inference mode, batch by batch, as one NumPy array."""
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def tie_fraction(logits: np.ndarray) -> float:
    """Fraction of examples whose largest logit is shared by several classes (integer
    spike-count logits tie often; ``argmax`` then picks the first class)."""
    return float(np.mean(np.sum(logits == logits.max(axis=1, keepdims=True), axis=1) > 1))


def error_rate(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Top-1 error (fraction) of ``argmax(model(x))`` (inference mode; ties: first class)."""
    return float(np.mean(np.argmax(predict_logits(model, x, batch_size), axis=1) != y))


def fig9_summary(model: keras.Model, x: np.ndarray, batch_size: int) -> tuple[list, dict]:
    """Fig. 9 per layer against the unrounded ``a`` and against ``floor(a)`` (keys ``angle_deg_floor``, ``pcc_floor``, ``pcc_floor_median``);
    also returns both raw results ``{"unrounded", "floor"}`` for the plots."""
    raw = {name: analysis.direction_preservation(model, x, batch_size=batch_size, rounding=r)
           for name, r in (("unrounded", None), ("floor", "floor"))}
    floor = {r["name"]: r for r in analysis.summarize(raw["floor"])}
    names = {"angle_deg": "angle_deg_floor", "pcc": "pcc_floor", "pcc_median": "pcc_floor_median"}
    rows = [{**row, **{names[k]: v for k, v in floor[row["name"]].items() if k in names}}
            for row in analysis.summarize(raw["unrounded"])]
    return rows, raw


class EpochMonitor(keras.callbacks.Callback):
    """Records the validation error (and optionally Fig. 9 statistics) after every epoch."""

    def __init__(self, x, y, batch_size, analysis_x=None):
        super().__init__()
        self.x, self.y, self.batch_size, self.analysis_x = x, y, batch_size, analysis_x
        self.errors: list[float] = []
        self.fig9: list[list[dict]] = []
        self.last_logits: Optional[np.ndarray] = None

    def on_epoch_end(self, epoch, logs=None):
        self.last_logits = predict_logits(self.model, self.x, self.batch_size)
        self.errors.append(float(np.mean(np.argmax(self.last_logits, axis=1) != self.y)))
        if self.analysis_x is not None:
            self.fig9.append(fig9_summary(self.model, self.analysis_x, self.batch_size)[0])
        logging.info("  epoch %d: validation error %.4f", epoch + 1, self.errors[-1])


def fit(config: Config, data: dict, model: keras.Model, monitor: Optional[EpochMonitor] = None
        ) -> tuple[dict[str, list[float]], float]:
    """Trains the compiled ``model`` on the budget's training batches; returns the per-epoch
    history (``loss``, ``top1``, ...) and the training seconds."""
    start = time.time()
    history = model.fit(train_dataset(config, data["x_train"], data["y_train"], data["image_shape"]),
                        epochs=config.epochs, steps_per_epoch=len(data["y_train"]) // config.batch_size,
                        verbose=0, shuffle=False, callbacks=[monitor] if monitor else [])
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}, round(time.time() - start, 1)


def train_one(config: Config, data: dict, mode: str, time_steps: int, decode: str = "membrane",
              curve: bool = False, fig9_x=None) -> tuple[keras.Model, dict]:
    """Trains one run with ``train.recipe``'s compiled model; returns it and its result."""
    keras.utils.set_random_seed(config.seed)
    model = recipe.compiled_model(recipe_values(config, mode, time_steps, decode), data["image_shape"],
                                  data["num_classes"], len(data["y_train"]) // config.batch_size)
    monitor = EpochMonitor(data["x_val"], data["y_val"], config.eval_batch_size, fig9_x) if curve else None
    history, seconds = fit(config, data, model, monitor)
    result = {"mode": mode, "time_steps": time_steps, "decode": decode, "train_seconds": seconds,
              "train_loss": history["loss"]}
    start = time.time()
    logits = monitor.last_logits if monitor else predict_logits(model, data["x_val"], config.eval_batch_size)
    result["val_error"] = float(np.mean(np.argmax(logits, axis=1) != data["y_val"]))
    if monitor:
        result["val_error_per_epoch"] = monitor.errors
        if fig9_x is not None:
            result["fig9_per_epoch"] = monitor.fig9
    if decode != "membrane":
        result["val_tie_fraction"] = tie_fraction(logits)
    if "x_test" in data:
        result["test_error"] = error_rate(model, data["x_test"], data["y_test"], config.eval_batch_size)
    result["eval_seconds"] = round(time.time() - start, 1)
    return model, result
