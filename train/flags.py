"""Command-line flags of ``python -m train`` and their checks.

The defaults reproduce the authors' CIFAR-10 recipe (docs/method.md §8): CIFARNet, T=10, Adam at
1e-3 divided by 10 every 50 epochs, 150 epochs, global batch 256, no weight decay,
45k/5k train/validation split, pad-4 random crop and horizontal flip.
"""
from __future__ import annotations

import functools
import json
import math
import os
from typing import Any

from absl import flags

import models
import tandem_keras as tk
from train.distribute import STRATEGIES

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

# The flags live in their own registry, not absl's global one: importing train (eval and the
# tests do) must not collide with other programs' flags of the same names (--epochs,
# --batch_size, ...). `python -m train` adds them to the global registry to parse argv.
FLAGS = flags.FlagValues()
_string, _integer, _float, _enum, _boolean = (
    functools.partial(define, flag_values=FLAGS)
    for define in (flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_float,
                   flags.DEFINE_enum, flags.DEFINE_boolean))

_string("model", "cifarnet", f"Model: one of {', '.join(sorted(models.BUILDERS))}.")
_string("dataset", "cifar10",
        "cifar10, imagenet2012 (TFDS; ImageNet from TFDS's manual download directory), "
        "digits (scikit-learn, no download) or folder:PATH (one sub-folder of images per class).")
_string("data_dir", None, "TFDS data directory (default: TFDS's).")
_integer("image_size", None,
         "Square input size: folder images are resized, ImageNet crops are taken at it.")
_integer("time_steps", 10, "Encoding window T (time steps of every spike train).")
_enum("decode", "membrane", ["membrane", "spike_count", "spike_count_tie", "spike_count_st"],
      "Output decoding (docs/method.md §4); spike_count_tie: spike counts, ties broken by the "
      "output neurons' final membrane potential; spike_count_st: the same with the "
      "straight-through output coupling (tandem_keras.decoding).")
_enum("mode", "tandem", list(tk.MODES), "Training mode of every tandem layer.")
_enum("export_mode", None, list(tk.MODES),
      "Mode of the exported model (default: --mode). --mode=quantized "
      "--export_mode=tandem is constrain-then-train.")
_float("dropout", None,
       "Dropout rate on the last hidden layer's spike counts (default: the model's).")
_integer("width_divisor", 1,
         "Divide every layer's width (filters, units) by this (the builders' width_divisor).")
_integer("epochs", 150, "Number of epochs.")
_integer("batch_size", 256, "Global batch size, split evenly across replicas.")
_float("learning_rate", 1e-3, "Initial Adam learning rate.")
_enum("lr_schedule", "step", ["step", "cosine", "constant"],
      "step: x --lr_step_factor every --lr_step_epochs; cosine: to 0 at the end.")
_integer("lr_step_epochs", 50, "Epochs between learning-rate steps (--lr_schedule=step).")
_float("lr_step_factor", 0.1, "Learning-rate factor per step (--lr_schedule=step).")
_float("weight_decay", 0.0, "Decoupled weight decay of Adam (0: none).")
_float("validation_split", 0.1, "Fraction of the training split held out for validation.")
_enum("augment", "auto", ["auto", "cifar", "imagenet", "none"],
      "Training augmentation; auto: the dataset's (docs/method.md §8; none for digits).")
_enum("strategy", "auto", list(STRATEGIES), "tf.distribute strategy.")
_string("tpu", "", "TPU name or address for --strategy=tpu.")
_integer("cpu_devices", 0,
         "Split the CPU into this many logical devices (--strategy=mirrored without GPUs).")
_enum("mixed_precision", "float32", list(PRECISIONS), "Keras dtype policy.")
_boolean("jit_compile", False, "Compile the train step with XLA.")
_integer("seed", 0, "Seed of initialization, shuffling, augmentation and dropout.")
_boolean("deterministic", False,
         "Enable TensorFlow op determinism (bit-identical reruns, slower on GPU).")
_string("model_dir", None, "Checkpoints (resume), TensorBoard logs, history.csv and flags.txt.")
_string("export_dir", None, "SavedModel and model.keras at the end (default: MODEL_DIR/export).")
_boolean("restart", False,
         "Start afresh in an existing --model_dir: delete its backup, logs, history and "
         "config instead of resuming (needed to change a flag of train.rundir.FIXED).")
_boolean("skip_bad_images", False,
         "folder:PATH datasets: leave out (and log) image files that cannot be decoded "
         "instead of refusing the folder.")
flags.mark_flag_as_required("model_dir", flag_values=FLAGS)


class FlagError(ValueError):
    """A bad flag value; ``str()`` is the one-line message, naming the flag."""

    def __init__(self, flag: str, value: Any, problem: str):
        super().__init__(f"--{flag}={value}: {problem}")
        self.flag = flag


def check(values: Any) -> None:
    """Checks flag values that do not need TensorFlow; raises :class:`FlagError`.

    ``values`` is :data:`FLAGS` (parsed) or any object with the same attributes. Every
    float flag must be finite (an infinite or NaN learning rate diverges at the first step).
    """
    if values.model not in models.BUILDERS:
        raise FlagError("model", values.model,
                        f"unknown model; choose one of {', '.join(sorted(models.BUILDERS))}")
    dataset = values.dataset
    if dataset not in ("cifar10", "imagenet2012", "digits") and not (
        dataset.startswith("folder:") and len(dataset) > len("folder:")
    ):
        raise FlagError("dataset", dataset,
                        "unknown dataset; use cifar10, imagenet2012, digits or folder:PATH")
    positive = {"time_steps": values.time_steps, "epochs": values.epochs,
                "batch_size": values.batch_size, "lr_step_epochs": values.lr_step_epochs,
                "width_divisor": getattr(values, "width_divisor", 1)}
    for name, value in positive.items():
        if value < 1:
            raise FlagError(name, value, "must be an integer >= 1")
    if values.image_size is not None and values.image_size < 1:
        raise FlagError("image_size", values.image_size, "must be an integer >= 1")
    floats = {"learning_rate": values.learning_rate, "lr_step_factor": values.lr_step_factor,
              "weight_decay": values.weight_decay, "validation_split": values.validation_split,
              "dropout": values.dropout}
    for name, value in floats.items():
        if value is not None and not math.isfinite(value):
            raise FlagError(name, value, "must be a finite number")
    if values.dropout is not None and not 0 <= values.dropout < 1:
        raise FlagError("dropout", values.dropout, "must be in [0, 1)")
    if not values.learning_rate > 0:
        raise FlagError("learning_rate", values.learning_rate, "must be > 0")
    if not 0 < values.lr_step_factor <= 1:
        raise FlagError("lr_step_factor", values.lr_step_factor,
                        "must be in (0, 1] (the learning rate is multiplied by it)")
    if values.weight_decay < 0:
        raise FlagError("weight_decay", values.weight_decay, "must be >= 0")
    if not 0 <= values.validation_split < 1:
        raise FlagError("validation_split", values.validation_split, "must be in [0, 1)")
    if values.cpu_devices < 0:
        raise FlagError("cpu_devices", values.cpu_devices, "must be >= 0")
    if values.strategy == "multi_worker" or (values.strategy == "auto"
                                             and os.environ.get("TF_CONFIG", "").strip()):
        _check_tf_config(values.strategy)
    for name in ("model_dir", "export_dir"):
        if getattr(values, name, None):
            problem = _output_dir_problem(getattr(values, name))
            if problem:
                raise FlagError(name, getattr(values, name), problem)


def _output_dir_problem(path: str) -> str | None:
    """Why ``path`` cannot be (created as) a writable directory, or None (URLs: not checked)."""
    if "://" in path:  # gs://... for TPUs: left to TensorFlow's file system
        return None
    if os.path.exists(path):
        if not os.path.isdir(path):
            return "exists and is not a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else "directory is not writable"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the nearest existing ancestor must take new entries
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: {parent} is not writable"
    return None


def _check_tf_config(strategy: str) -> None:
    """``--strategy=multi_worker`` needs ``TF_CONFIG`` naming the cluster and this task;
    with ``auto`` a set ``TF_CONFIG`` must at least be JSON."""
    raw = os.environ.get("TF_CONFIG", "")
    problem = None
    try:
        config = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as e:
        config, problem = None, f"TF_CONFIG is not valid JSON ({e.msg})"
    if problem is None and strategy == "multi_worker" and not (
            isinstance(config, dict) and config.get("cluster")
            and isinstance(config.get("task"), dict)):
        problem = ("needs TF_CONFIG with the cluster and this worker's task, e.g. TF_CONFIG="
                   "'{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                   "\"task\": {\"type\": \"worker\", \"index\": 0}}'")
    if problem:
        raise FlagError("strategy", strategy, problem)
