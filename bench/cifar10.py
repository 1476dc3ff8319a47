"""The CIFAR-10 reproduction's budgets, data and runs (``bench.reproduce_cifar10``).

A budget is a named :class:`Config`; :func:`recipe_values` turns it, for one run (mode,
window, decoding), into the ``train.config.TrainConfig`` that ``train.recipe`` builds and
compiles, as ``python -m train`` does from its flags. Budgets (every value can be overridden
by its flag): ``tiny`` (seconds, for the tests), ``small`` (CIFARNet / 8, 10k / 5k images, 2
epochs, cosine, T = 4, sweep T in {1, 2, 4, 8}: 7.4 min on the idle 2-core machine),
``medium`` (all 45k / 5k images, 3 epochs with augmentation, 1-2 hours) and ``full`` (the
authors' recipe for a GPU: 150 epochs, batch 256, Adam 1e-3 x0.1 every 50 epochs, T = 10).

Example:
  >>> make_config("small", "/data/train").sweep_time_steps
  (1, 2, 4, 8)
  >>> recipe_values(make_config("small", "/data/train"), "quantized", 8).time_steps
  8
  >>> tie_fraction(np.array([[2.0, 2.0, 0.0], [1.0, 3.0, 0.0]]))
  0.5
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from common import datasets, pipeline
from tandem_keras import analysis
from train import recipe
from train.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Config:
    """One reproduction run; :data:`BUDGETS` holds the presets."""

    budget: str
    train_dir: str
    test_dir: Optional[str] = None
    out_dir: str = "/tmp/reproduce_cifar10"
    figures_dir: Optional[str] = None  # default: <out_dir>/figures
    width_divisor: int = 8
    train_size: int = 5000
    val_size: int = 2000
    test_size: int = 10000
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"  # cosine | step | constant
    lr_step_epochs: int = 50
    lr_step_factor: float = 0.1
    augment: str = "none"  # cifar | none
    dropout: float = 0.2  # on the last hidden layer's counts
    time_steps: int = 4  # the main window (Fig. 8A, Fig. 9)
    sweep_time_steps: tuple = (1, 2, 4, 8)  # Fig. 8B and constrain-then-train
    synops_time_steps: tuple = (4, 8)  # Table II
    analysis_examples: int = 256  # Fig. 7C and Fig. 9 (the paper: one batch of 256)
    synops_examples: int = 1000
    eval_batch_size: int = 250
    run_eagerly: bool = False  # tiny: a few steps run faster eagerly than traced
    seed: int = 0


BUDGETS: dict[str, dict[str, Any]] = {
    "tiny": dict(width_divisor=32, train_size=48, val_size=16, test_size=16, epochs=1, batch_size=16,
                 lr_schedule="constant", time_steps=2, sweep_time_steps=(1, 2), synops_time_steps=(2,),
                 analysis_examples=8, synops_examples=8, eval_batch_size=16, run_eagerly=True, dropout=0.0),
    "small": dict(width_divisor=8, train_size=10000, val_size=5000, test_size=5000, epochs=2),
    "medium": dict(width_divisor=8, train_size=45000, val_size=5000, epochs=3, augment="cifar",
                   synops_time_steps=(4, 10)),
    "full": dict(width_divisor=1, train_size=45000, val_size=5000, epochs=150, batch_size=256,
                 lr_schedule="step", augment="cifar", time_steps=10, sweep_time_steps=(1, 2, 4, 8, 10),
                 synops_time_steps=(4, 10)),
}


def make_config(budget: str, train_dir: str, **overrides: Any) -> Config:
    """The preset ``budget`` with ``overrides`` (``None`` values ignored); ``ValueError``
    naming a bad value."""
    if budget not in BUDGETS:
        raise ValueError(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if not train_dir:
        raise ValueError("--train_dir is required: a folder with one sub-folder of images per class")
    values = {**BUDGETS[budget], **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("sweep_time_steps", "synops_time_steps"):
        values[key] = tuple(sorted({int(t) for t in values.get(key, getattr(Config, key))}))
    config = Config(budget=budget, train_dir=train_dir, **values)
    for key in ("width_divisor", "train_size", "val_size", "test_size", "epochs", "batch_size", "time_steps",
                "analysis_examples", "synops_examples", "eval_batch_size"):
        if int(getattr(config, key)) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(config, key)}")
    if min(config.sweep_time_steps + config.synops_time_steps, default=1) < 1:
        raise ValueError("time steps must be >= 1")
    if config.lr_schedule not in ("cosine", "step", "constant"):
        raise ValueError(f"lr_schedule must be cosine, step or constant, got {config.lr_schedule!r}")
    if config.augment not in ("cifar", "none"):
        raise ValueError(f"augment must be cifar or none, got {config.augment!r}")
    if config.batch_size > config.train_size:
        raise ValueError(f"batch_size {config.batch_size} is larger than train_size {config.train_size}")
    return config


def recipe_values(config: Config, mode: str, time_steps: int, decode: str = "membrane") -> TrainConfig:
    """The ``train.recipe`` configuration of one run of ``config`` (CIFARNet / width_divisor)."""
    return TrainConfig(
        model="cifarnet", mode=mode, time_steps=time_steps, decode=decode, dropout=config.dropout,
        width_divisor=config.width_divisor, model_name=f"cifarnet_w{config.width_divisor}_{mode}_T{time_steps}_{decode}",
        learning_rate=config.learning_rate, lr_schedule=config.lr_schedule, lr_step_epochs=config.lr_step_epochs,
        lr_step_factor=config.lr_step_factor, epochs=config.epochs, batch_size=config.batch_size,
        augment=config.augment, seed=config.seed, weight_decay=0.0, jit_compile=False, run_eagerly=config.run_eagerly)


def _to_arrays(examples: tf.data.Dataset, limit: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*examples.take(limit).batch(1024).as_numpy_iterator())
    return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32)


def load_data(config: Config) -> dict[str, Any]:
    """Train / validation (/ test) arrays of the image folders: ``common.datasets``' fixed 90/10
    partition, the first ``train_size`` / ``val_size`` examples of each part."""
    source = datasets.load(f"folder:{config.train_dir}", validation_split=0.1)
    data = dict(zip(("x_train", "y_train"), _to_arrays(source.split("train")[0], config.train_size)),
                **dict(zip(("x_val", "y_val"), _to_arrays(source.split("validation")[0], config.val_size))),
                num_classes=source.num_classes, image_shape=source.image_shape, source=source,
                available={"train": source.num_train, "validation": source.num_validation})
    if config.test_dir:
        test = datasets.load(f"folder:{config.test_dir}", validation_split=0.0)
        if test.image_shape != source.image_shape or test.num_classes != source.num_classes:
            raise ValueError(f"--test_dir images {test.image_shape} / {test.num_classes} classes do "
                             f"not match --train_dir {source.image_shape} / {source.num_classes}")
        data["x_test"], data["y_test"] = _to_arrays(test.split("train")[0], config.test_size)
    return data


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``model(x)`` in inference mode, batch by batch."""
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)])


def error_rate(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Top-1 error (fraction) of ``argmax(model(x))`` (ties: the first class)."""
    return float(np.mean(np.argmax(predict_logits(model, x, batch_size), axis=1) != y))


def tie_fraction(logits: np.ndarray) -> float:
    """Fraction of examples whose largest logit is shared by several classes."""
    return float(np.mean(np.sum(logits == logits.max(axis=1, keepdims=True), axis=1) > 1))


def fig9_summary(model: keras.Model, x: np.ndarray, batch_size: int) -> tuple[list, dict]:
    """Fig. 9 per layer against the unrounded ``a`` and ``floor(a)`` (keys ``*_floor``), and
    both raw results ``{"unrounded", "floor"}`` for the plots."""
    raw = {name: analysis.direction_preservation(model, x, batch_size=batch_size, rounding=r)
           for name, r in (("unrounded", None), ("floor", "floor"))}
    floor = {r["name"]: r for r in analysis.summarize(raw["floor"])}
    names = {"angle_deg": "angle_deg_floor", "pcc": "pcc_floor", "pcc_median": "pcc_floor_median"}
    return [{**row, **{names[k]: v for k, v in floor[row["name"]].items() if k in names}}
            for row in analysis.summarize(raw["unrounded"])], raw


class EpochMonitor(keras.callbacks.Callback):
    """The validation error (and, with ``analysis_x``, Fig. 9) after every epoch (``curve``)
    or after the last one."""

    def __init__(self, x, y, batch_size, analysis_x=None, curve=True):
        super().__init__()
        self.x, self.y, self.batch_size, self.analysis_x, self.curve = x, y, batch_size, analysis_x, curve
        self.errors, self.fig9, self.last_logits = [], [], None

    def on_epoch_end(self, epoch, logs=None):
        if not self.curve and epoch + 1 < self.params["epochs"]:
            return
        self.last_logits = predict_logits(self.model, self.x, self.batch_size)
        self.errors.append(float(np.mean(np.argmax(self.last_logits, axis=1) != self.y)))
        if self.analysis_x is not None:
            self.fig9.append(fig9_summary(self.model, self.analysis_x, self.batch_size)[0])
        logging.info("  epoch %d: validation error %.4f", epoch + 1, self.errors[-1])


def train_one(config: Config, data: dict, mode: str, time_steps: int, decode: str = "membrane",
              curve: bool = False, fig9_x=None) -> tuple[keras.Model, dict]:
    """Trains one run with ``train.recipe``'s model and compile; returns it and its result:
    the validation error (``curve``: per epoch too), ties, the test error."""
    keras.utils.set_random_seed(config.seed)
    x, y, steps = data["x_train"], data["y_train"], len(data["y_train"]) // config.batch_size
    model = recipe.compiled_model(recipe_values(config, mode, time_steps, decode), data["image_shape"],
                                  data["num_classes"], steps)
    monitor = EpochMonitor(data["x_val"], data["y_val"], config.eval_batch_size, fig9_x, curve)
    source = datasets.Source("arrays", {"train": (tf.data.Dataset.from_tensor_slices((x, y)), len(y))},
                             int(y.max()) + 1, tuple(data["image_shape"]), augment=config.augment, cache=True)
    start = time.time()  # common.pipeline's batches: per-epoch shuffle, the budget's augmentation
    history = model.fit(pipeline.train_batches(source, batch_size=config.batch_size, seed=config.seed,
                                               start_epoch=0, epochs=config.epochs),
                        epochs=config.epochs, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[monitor])
    result = {"mode": mode, "time_steps": time_steps, "decode": decode, "train_seconds": round(time.time() - start, 1),
              "train_loss": [float(v) for v in history.history["loss"]],
              "val_error": monitor.errors[-1], **({"val_error_per_epoch": monitor.errors} if curve else {})}
    start, logits = time.time(), monitor.last_logits
    if fig9_x is not None:
        result["fig9_per_epoch"] = monitor.fig9
    if decode != "membrane":
        result["val_tie_fraction"] = tie_fraction(logits)
    if "x_test" in data:
        result["test_error"] = error_rate(model, data["x_test"], data["y_test"], config.eval_batch_size)
    result["eval_seconds"] = round(time.time() - start, 1)
    return model, result
