"""The named configurations (budgets) of the CIFAR-10 reproduction, and its data.

A budget is a :class:`Config`; :func:`recipe_values` turns it, for one run (mode, window,
decoding), into the ``train.config.TrainConfig`` that ``train.recipe.compiled_model``
takes, as ``python -m train`` makes it from its flags: the reproduction trains with the same
build, compile and learning-rate schedule as users do.

Budgets (every value can be overridden by its flag in ``bench.reproduce_cifar10``):

* ``tiny``: a seconds-long smoke run for the tests (any small image folder);
* ``small``: CIFARNet / 8, 10k train / 5k validation images, 2 epochs, cosine, T = 4,
  sweep T in {1, 2, 4, 8}, SynOps at T = 4 and 8 (7.4 min on the idle 2-core machine);
* ``medium``: CIFARNet / 8, all 45k / 5k images, 3 epochs with augmentation, SynOps at
  T = 4 and 10 (an estimated 1-2 hours on 2 CPU cores);
* ``full``: the authors' recipe for a GPU: full CIFARNet, 45k / 5k, 150 epochs, batch 256,
  Adam 1e-3 x0.1 every 50 epochs, pad-4 crop and flip, T = 10.

Example:
  >>> make_config("small", "/data/train").sweep_time_steps
  (1, 2, 4, 8)
  >>> recipe_values(make_config("small", "/data/train"), "quantized", 8).time_steps
  8
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from common import datasets, pipeline
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
    "tiny": dict(width_divisor=32, train_size=48, val_size=16, test_size=16, epochs=1,
                 batch_size=16, lr_schedule="constant", augment="none", time_steps=2,
                 sweep_time_steps=(1, 2), synops_time_steps=(2,), analysis_examples=8,
                 synops_examples=8, eval_batch_size=16, run_eagerly=True, dropout=0.0),
    "small": dict(width_divisor=8, train_size=10000, val_size=5000, test_size=5000, epochs=2,
                  batch_size=64, lr_schedule="cosine", augment="none", time_steps=4,
                  sweep_time_steps=(1, 2, 4, 8), synops_time_steps=(4, 8)),
    "medium": dict(width_divisor=8, train_size=45000, val_size=5000, test_size=10000,
                   epochs=3, batch_size=64, lr_schedule="cosine", augment="cifar",
                   time_steps=4, sweep_time_steps=(1, 2, 4, 8), synops_time_steps=(4, 10)),
    "full": dict(width_divisor=1, train_size=45000, val_size=5000, test_size=10000,
                 epochs=150, batch_size=256, lr_schedule="step", lr_step_epochs=50,
                 augment="cifar", time_steps=10, sweep_time_steps=(1, 2, 4, 8, 10),
                 synops_time_steps=(4, 10)),
}


def make_config(budget: str, train_dir: str, **overrides: Any) -> Config:
    """The preset ``budget`` with ``overrides`` (``None`` values ignored), checked.

    Raises ``ValueError`` naming the bad value.
    """
    if budget not in BUDGETS:
        raise ValueError(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if not train_dir:
        raise ValueError("--train_dir is required: a folder with one sub-folder of images per class")
    values = dict(BUDGETS[budget])
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("sweep_time_steps", "synops_time_steps"):
        values[key] = tuple(sorted({int(t) for t in values[key]}))
    config = Config(budget=budget, train_dir=train_dir, **values)
    positive = ("width_divisor", "train_size", "val_size", "test_size", "epochs", "batch_size",
                "time_steps", "analysis_examples", "synops_examples", "eval_batch_size")
    for key in positive:
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


def recipe_values(config: Config, mode: str, time_steps: int,
                  decode: str = "membrane") -> TrainConfig:
    """The ``train.recipe`` configuration of one run of ``config`` (CIFARNet / width_divisor)."""
    return TrainConfig(
        model="cifarnet", mode=mode, time_steps=time_steps, decode=decode,
        dropout=config.dropout, width_divisor=config.width_divisor,
        model_name=f"cifarnet_w{config.width_divisor}_{mode}_T{time_steps}_{decode}",
        learning_rate=config.learning_rate, lr_schedule=config.lr_schedule,
        lr_step_epochs=config.lr_step_epochs, lr_step_factor=config.lr_step_factor,
        epochs=config.epochs, batch_size=config.batch_size, augment=config.augment,
        seed=config.seed, weight_decay=0.0, jit_compile=False, run_eagerly=config.run_eagerly)


def _to_arrays(examples: tf.data.Dataset, limit: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for x, y in examples.take(limit).batch(1024).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32)


def load_data(config: Config) -> dict[str, Any]:
    """Train / validation (/ test) arrays from the image folders (``common.datasets``' fixed
    90/10 split; the first ``train_size`` / ``val_size`` examples of each part)."""
    source = datasets.load(f"folder:{config.train_dir}", validation_split=0.1)
    x_train, y_train = _to_arrays(source.split("train")[0], config.train_size)
    x_val, y_val = _to_arrays(source.split("validation")[0], config.val_size)
    result = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
              "num_classes": source.num_classes, "image_shape": source.image_shape,
              "available": {"train": source.num_train, "validation": source.num_validation},
              "source": source}
    if config.test_dir:
        test = datasets.load(f"folder:{config.test_dir}", validation_split=0.0)
        if test.image_shape != source.image_shape or test.num_classes != source.num_classes:
            raise ValueError(f"--test_dir images {test.image_shape} / {test.num_classes} classes do "
                             f"not match --train_dir {source.image_shape} / {source.num_classes}")
        result["x_test"], result["y_test"] = _to_arrays(test.split("train")[0], config.test_size)
    return result


def train_dataset(config: Config, x: np.ndarray, y: np.ndarray, image_shape) -> tf.data.Dataset:
    """Training batches through ``common.pipeline`` (per-epoch shuffle, optional pad-4 crop + flip)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    source = datasets.Source("arrays", {"train": (ds, len(y))}, int(y.max()) + 1,
                               tuple(image_shape), augment=config.augment, cache=True)
    return pipeline.train_batches(source, batch_size=config.batch_size, seed=config.seed,
                                  start_epoch=0, epochs=config.epochs)
