"""Command-line flags of ``python -m train``: one per field of ``train.config.TrainConfig``.

Defaults come from :class:`~train.config.TrainConfig` (the authors' recipe). Every value
is checked by absl when the flags are parsed (``lower_bound`` / ``upper_bound``, enums,
``flags.register_validator``), so a bad value is one line ``flag --name=value: problem``
before anything runs; the choices come from where they are defined (``models.BUILDERS``,
``models._builder.DECODES``, ``tk.MODES``, ``train.distribute.STRATEGIES``). The upper bounds
keep a typo from hanging a run: the train step's graph and memory grow with
``--time_steps`` and the image size.

Example:
  >>> FLAGS.unparse_flags()
  >>> _ = FLAGS(["train", "--model=digits", "--time_steps=4", "--model_dir=/tmp/m"])
  >>> to_config(FLAGS).time_steps
  4
  >>> to_config(FLAGS).to_flags().splitlines()[:2]
  ['--model=digits', '--time_steps=4']
  >>> FLAGS.unparse_flags()
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
from models._builder import DECODES
from train.config import RECORDED, TrainConfig
from common.console import output_problem
from train.distribute import STRATEGIES

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
MAX_TIME_STEPS = 256  # the step's graph unrolls T: ~0.14 s of tracing per step on digits
MAX_IMAGE_SIZE = 1024
MAX_EPOCHS = 10_000
DEFAULT = TrainConfig()

# The flags live in their own registry, not absl's global one: importing train (eval and the
# tests do) must not collide with other programs' flags of the same names (--epochs,
# --batch_size, ...). `python -m train` adds them to the global registry to parse argv.
FLAGS = flags.FlagValues()
_string, _integer, _float, _enum, _boolean = (
    functools.partial(define, flag_values=FLAGS)
    for define in (flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_float,
                   flags.DEFINE_enum, flags.DEFINE_boolean))


def _default(name: str) -> Any:
    return getattr(DEFAULT, name)


def _in_range(name: str, low: float, high: float = math.inf, *, open_low: bool = False,
              open_high: bool = False) -> None:
    """Validates a float flag: finite (absl's bounds let NaN through) and within its range."""
    def check(value: float | None) -> bool:
        if value is None:
            return True
        if not math.isfinite(value):
            raise flags.ValidationError("must be a finite number")
        if value < low or value > high or (open_low and value == low) or (open_high and value == high):
            if high == math.inf:
                raise flags.ValidationError(f"must be {'>' if open_low else '>='} {low}")
            raise flags.ValidationError(f"must be in {'(' if open_low else '['}{low}, "
                                        f"{high}{')' if open_high else ']'}")
        return True

    flags.register_validator(name, check, flag_values=FLAGS)


_enum("model", _default("model"), sorted(models.BUILDERS), "The model builder (models).")
_string("dataset", _default("dataset"),
        "cifar10, imagenet2012 (TFDS; ImageNet from TFDS's manual download directory), "
        "digits (scikit-learn, no download) or folder:PATH (one sub-folder of images per class).")
_string("data_dir", _default("data_dir"), "TFDS data directory (default: TFDS's).")
_integer("image_size", _default("image_size"),
         "Square input size: folder images are resized, ImageNet crops are taken at it.",
         lower_bound=1, upper_bound=MAX_IMAGE_SIZE)
_integer("time_steps", _default("time_steps"), "Encoding window T (time steps of every spike train).",
         lower_bound=1, upper_bound=MAX_TIME_STEPS)
_enum("decode", _default("decode"), list(DECODES),
      "Output decoding (docs/method.md §4); spike_count_tie: spike counts, ties broken by the "
      "output neurons' final membrane potential; spike_count_st: the same with the "
      "straight-through output coupling (tandem_keras.decoding).")
_enum("mode", _default("mode"), list(tk.MODES), "Training mode of every tandem layer.")
_enum("export_mode", _default("export_mode"), list(tk.MODES),
      "Mode of the exported model (default: --mode). --mode=quantized "
      "--export_mode=tandem is constrain-then-train.")
_float("dropout", _default("dropout"),
       "Dropout rate on the last hidden layer's spike counts (default: the model's).")
_in_range("dropout", 0.0, 1.0, open_high=True)
_string("init_from", _default("init_from"),
        "Start from a trained ANN: a .keras file or the export directory of a --mode=ann run "
        "(its model.keras), converted by tk.convert (train.init_from); the model, its width, "
        "dropout, readout and dtype policies are then that file's, not --model's.")
flags.register_validator("init_from", lambda path: path is None or _init_from_file(path) is not None,
                         "must be a .keras file or a directory holding model.keras", flag_values=FLAGS)
_integer("width_divisor", _default("width_divisor"),
         "Divide every layer's width (filters, units) by this (the builders' width_divisor).",
         lower_bound=1, upper_bound=1024)
_integer("epochs", _default("epochs"), "Number of epochs.", lower_bound=1, upper_bound=MAX_EPOCHS)
_integer("batch_size", _default("batch_size"), "Global batch size, split evenly across replicas.",
         lower_bound=1, upper_bound=2**20)
_float("learning_rate", _default("learning_rate"), "Initial Adam learning rate.")
_in_range("learning_rate", 0.0, open_low=True)
_enum("lr_schedule", _default("lr_schedule"), ["step", "cosine", "constant"],
      "step: x --lr_step_factor every --lr_step_epochs; cosine: to 0 at the end.")
_integer("lr_step_epochs", _default("lr_step_epochs"),
         "Epochs between learning-rate steps (--lr_schedule=step).",
         lower_bound=1, upper_bound=MAX_EPOCHS)
_float("lr_step_factor", _default("lr_step_factor"),
       "Learning-rate factor per step (--lr_schedule=step); the rate is multiplied by it.")
_in_range("lr_step_factor", 0.0, 1.0, open_low=True)
_float("weight_decay", _default("weight_decay"), "Decoupled weight decay of Adam (0: none).")
_in_range("weight_decay", 0.0)
_float("ema_momentum", _default("ema_momentum"),
       "Keep an exponential moving average of the weights with this momentum and export it "
       "(0: none; e.g. 0.999 when fine-tuning an SNN).")
_in_range("ema_momentum", 0.0, 1.0, open_high=True)
_float("validation_split", _default("validation_split"),
       "Fraction of the training split held out for validation.")
_in_range("validation_split", 0.0, 1.0, open_high=True)
_enum("augment", _default("augment"), ["auto", "cifar", "imagenet", "none"],
      "Training augmentation; auto: the dataset's (docs/method.md §8; none for digits).")
_enum("strategy", _default("strategy"), list(STRATEGIES), "tf.distribute strategy.")
_string("tpu", _default("tpu"), "TPU name or address for --strategy=tpu.")
_integer("cpu_devices", _default("cpu_devices"),
         "Split the CPU into this many logical devices (--strategy=mirrored without GPUs).",
         lower_bound=0, upper_bound=256)
_enum("mixed_precision", _default("mixed_precision"), list(PRECISIONS), "Keras dtype policy.")
_boolean("jit_compile", _default("jit_compile"), "Compile the train step with XLA.")
_integer("seed", _default("seed"), "Seed of initialization, shuffling, augmentation and dropout.",
         lower_bound=0, upper_bound=2**31 - 2)
_boolean("deterministic", _default("deterministic"),
         "Enable TensorFlow op determinism (bit-identical reruns, slower on GPU).")
_string("model_dir", _default("model_dir"),
        "The run directory: backup (resume), TensorBoard logs, history.csv, config.json, flags.txt.")
_string("export_dir", _default("export_dir"),
        "SavedModel and model.keras at the end (default: MODEL_DIR/export).")
_boolean("restart", False,
         "Start afresh in an existing --model_dir: delete its backup, logs, history and "
         "config instead of resuming (needed to change a fixed flag, train.config.FIXED). "
         "Never written to flags.txt.")
_boolean("skip_bad_images", _default("skip_bad_images"),
         "folder:PATH datasets: leave out (and log) image files that cannot be decoded "
         "instead of refusing the folder.")
flags.mark_flag_as_required("model_dir", flag_values=FLAGS)


class FlagError(ValueError):
    """A flag value that turns out to be unusable once the data or the devices are known;
    ``str()`` is the one-line message, naming the flag."""

    def __init__(self, flag: str, value: Any, problem: str):
        super().__init__(f"--{flag}={value}: {problem}")
        self.flag = flag


def _init_from_file(path: str) -> str | None:
    """The ``.keras`` file of ``--init_from`` (the path, or its ``model.keras``), or None."""
    candidate = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    return candidate if os.path.isfile(candidate) and candidate.endswith(".keras") else None


def to_config(values: flags.FlagValues) -> TrainConfig:
    """The :class:`TrainConfig` of parsed flags (every recorded field has its flag)."""
    return TrainConfig(**{name: values[name].value for name in RECORDED})


def _writable_dir(path: str | None) -> bool:
    problem = path and output_problem(path, directory=True)
    if problem:
        raise flags.ValidationError(problem)
    return True


def _tf_config(strategy: str) -> bool:
    """``--strategy=multi_worker`` needs ``TF_CONFIG`` naming the cluster and this task;
    with ``auto`` a set ``TF_CONFIG`` must at least be JSON."""
    raw = os.environ.get("TF_CONFIG", "")
    if strategy not in ("multi_worker", "auto") or (strategy == "auto" and not raw.strip()):
        return True
    try:
        config = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as e:
        raise flags.ValidationError(f"TF_CONFIG is not valid JSON ({e.msg})") from None
    if strategy == "multi_worker" and not (
            isinstance(config, dict) and config.get("cluster")
            and isinstance(config.get("task"), dict)):
        raise flags.ValidationError(
            "needs TF_CONFIG with the cluster and this worker's task, e.g. TF_CONFIG="
            "'{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
            "\"task\": {\"type\": \"worker\", \"index\": 0}}'")
    return True


for _name in ("model_dir", "export_dir"):
    flags.register_validator(_name, _writable_dir, flag_values=FLAGS)
flags.register_validator("strategy", _tf_config, flag_values=FLAGS)
