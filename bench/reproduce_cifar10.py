"""Reproduces the tandem-learning paper's CIFAR-10 findings, at a chosen scale (issue 5).

    python -m bench.reproduce_cifar10 --budget=small --train_dir=/tmp/cifar10_jpeg/cifar10_jpeg/train

``--train_dir`` is a folder with one sub-folder of images per class (CIFAR-10 as JPEG/PNG);
it is split 90/10 into train/validation with the fixed partition of ``train.data``
(45k/5k on the 50k CIFAR-10 training images), and ``--train_size`` / ``--val_size``
take the first examples of each part (a random subset: the partition is a permutation).
``--test_dir`` (optional, same layout) adds a test error to every run.

What is trained (the same width-reduced CIFARNet, recipe and data for all):

* ``ann``: the plain ReLU ANN (``mode="ann"``);
* ``quantized_T{t}``: the bounded quantized ANN of Eq. 11 (``mode="quantized"``); run as
  an SNN with ``tk.with_mode(model, "tandem")`` it is constrain-then-train (``ctt_T{t}``);
* ``tandem_T{t}``: the tandem SNN, membrane-potential decoding, for every ``t`` of the
  window sweep, of the SynOps windows and the main window ``--time_steps``;
* ``tandem_spike_T{T}``: the tandem SNN with spike-count decoding at the main window.

The five findings (each written to ``results.json`` / ``results.md`` and a figure):

1. Fig. 8A: validation error per epoch of ANN, quantized ANN and both tandem SNNs; the
   tandem SNN should end within about 1.5 points of the quantized ANN.
2. Section III-C / Fig. 7C: constrain-then-train loses more than tandem at short windows;
   the per-layer spike-count discrepancy ``mean |c - a|`` grows with depth.
3. Fig. 8B: validation error of the tandem SNN for each T: falls with T and flattens.
4. Table II: SynOps SNN/ANN ratio (Eq. 13-14) of the trained SNNs, below 1.
5. Fig. 9: per-layer angle between ANN and SNN counts, PCC of weight-activation products.

Budgets (every value can be overridden by its flag):

* ``tiny``: a seconds-long smoke run for the tests (any small image folder);
* ``small``: about 9 CPU-minutes (measured: 14.5 min wall on 2 cores shared with other
  jobs): CIFARNet / 8, 10k train / 5k validation images, 2 epochs, T = 4, sweep T in
  {1, 2, 4, 8}, SynOps at T = 4 and 8 (T = 8 is trained for the sweep anyway);
* ``medium``: about 7x the work of ``small`` (1-2 hours on 2 CPU cores, depending on
  load): CIFARNet / 8, all 45k / 5k images, 3 epochs with augmentation, SynOps at T = 4
  and 10;
* ``full``: the authors' recipe (SPEC 8) for a GPU: full CIFARNet, 45k / 5k, 150 epochs,
  batch 256, Adam 1e-3 x0.1 every 50 epochs, pad-4 crop and flip, T = 10.

Outputs: ``--out_dir`` (``results.json``, ``results.md``, ``models/<run>.keras``) and PNG figures in
``--figures_dir`` named ``cifar10_<budget>_<figure>.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from typing import Any, Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tandem_keras as tk  # noqa: E402
from tandem_keras import activity, analysis, plots  # noqa: E402
from models import cifarnet  # noqa: E402
from train import data as train_data  # noqa: E402
from train import pipeline  # noqa: E402

# --------------------------------------------------------------------------- budgets


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
    augment: str = "none"  # cifar | none
    dropout: float = 0.2  # on the last hidden layer's counts (SPEC 7)
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
                 synops_examples=8, eval_batch_size=16,
                 run_eagerly=True, dropout=0.0),
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

    Example:
      >>> make_config("small", "/data/train").sweep_time_steps
      (1, 2, 4, 8)
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


# --------------------------------------------------------------------------- data


def _to_arrays(examples: tf.data.Dataset, limit: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for x, y in examples.take(limit).batch(1024).as_numpy_iterator():
        images.append(x)
        labels.append(y)
    return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32)


def load_data(config: Config) -> dict[str, Any]:
    """Train / validation (/ test) arrays from the image folders (``train.data``'s split)."""
    source = train_data.load(f"folder:{config.train_dir}", validation_split=0.1)
    x_train, y_train = _to_arrays(source.split("train")[0], config.train_size)
    x_val, y_val = _to_arrays(source.split("validation")[0], config.val_size)
    result = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val,
              "num_classes": source.num_classes, "image_shape": source.image_shape,
              "available": {"train": source.num_train, "validation": source.num_validation}}
    if config.test_dir:
        test = train_data.load(f"folder:{config.test_dir}", validation_split=0.0)
        if test.image_shape != source.image_shape or test.num_classes != source.num_classes:
            raise ValueError(f"--test_dir images {test.image_shape} / {test.num_classes} classes do "
                             f"not match --train_dir {source.image_shape} / {source.num_classes}")
        result["x_test"], result["y_test"] = _to_arrays(test.split("train")[0], config.test_size)
    return result


def train_dataset(config: Config, x: np.ndarray, y: np.ndarray, image_shape) -> tf.data.Dataset:
    """SPEC 8 batches (``train.pipeline``: per-epoch shuffle, optional pad-4 crop + flip)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    source = train_data.Source("arrays", {"train": (ds, len(y))}, int(y.max()) + 1,
                               tuple(image_shape), augment=config.augment, cache=True)
    return pipeline.train_batches(source, batch_size=config.batch_size, seed=config.seed,
                                  start_epoch=0, epochs=config.epochs)


def learning_rate(config: Config, steps_per_epoch: int):
    """Adam learning rate: ``step`` (x0.1 every ``lr_step_epochs``), ``cosine`` or ``constant``."""
    total = config.epochs * steps_per_epoch
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total)
    if config.lr_schedule == "step":
        step = config.lr_step_epochs * steps_per_epoch
        boundaries = list(range(step, total, step))
        if boundaries:
            rates = [config.learning_rate * 0.1 ** k for k in range(len(boundaries) + 1)]
            return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, rates)
    return config.learning_rate


# --------------------------------------------------------------------------- models


def build_model(config: Config, image_shape, num_classes: int, mode: str, time_steps: int,
                decode: str = "membrane") -> keras.Model:
    """CIFARNet (SPEC 7) with every width divided by ``config.width_divisor``."""
    return cifarnet(
        input_shape=tuple(image_shape), num_classes=num_classes, time_steps=time_steps,
        decode=decode, mode=mode, dropout=config.dropout, width_divisor=config.width_divisor,
        name=f"cifarnet_w{config.width_divisor}_{mode}_T{time_steps}_{decode}")


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``model(x)`` in inference mode, batch by batch, as one NumPy array."""
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def tie_fraction(logits: np.ndarray) -> float:
    """Fraction of examples whose largest logit is shared by several classes (integer
    spike-count logits tie often; ``argmax`` then picks the first class).

    Example:
      >>> tie_fraction(np.array([[2.0, 2.0, 0.0], [1.0, 3.0, 0.0]]))
      0.5
    """
    return float(np.mean(np.sum(logits == logits.max(axis=1, keepdims=True), axis=1) > 1))


def error_rate(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Top-1 error (fraction) of ``argmax(model(x))`` (inference mode; ties: first class)."""
    return float(np.mean(np.argmax(predict_logits(model, x, batch_size), axis=1) != y))


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
            found = analysis.direction_preservation(self.model, self.analysis_x,
                                                    batch_size=self.batch_size)
            self.fig9.append(summarize_fig9(found, floored_preservation(self.model, found)))
        logging.info("  epoch %d: validation error %.4f", epoch + 1, self.errors[-1])


def train_one(config: Config, data: dict, mode: str, time_steps: int, decode: str = "membrane",
              curve: bool = False, fig9_x=None) -> tuple[keras.Model, dict]:
    """Trains one model with the shared recipe; returns it and its record."""
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, data["image_shape"], data["num_classes"], mode, time_steps, decode)
    steps = len(data["y_train"]) // config.batch_size
    model.compile(optimizer=keras.optimizers.Adam(learning_rate(config, steps)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=config.run_eagerly)
    monitor = EpochMonitor(data["x_val"], data["y_val"], config.eval_batch_size, fig9_x) if curve else None
    start = time.time()
    history = model.fit(train_dataset(config, data["x_train"], data["y_train"], data["image_shape"]),
                        epochs=config.epochs, steps_per_epoch=steps, verbose=0, shuffle=False,
                        callbacks=[monitor] if monitor else [])
    train_seconds = time.time() - start
    record = {"mode": mode, "time_steps": time_steps, "decode": decode,
              "train_seconds": round(train_seconds, 1),
              "train_loss": [float(v) for v in history.history["loss"]]}
    start = time.time()
    val_logits = (monitor.last_logits if monitor else
                  predict_logits(model, data["x_val"], config.eval_batch_size))
    record["val_error"] = float(np.mean(np.argmax(val_logits, axis=1) != data["y_val"]))
    if monitor:
        record["val_error_per_epoch"] = monitor.errors
        if fig9_x is not None:
            record["fig9_per_epoch"] = monitor.fig9
    if decode == "spike_count":
        record["val_tie_fraction"] = tie_fraction(val_logits)
    if "x_test" in data:
        record["test_error"] = error_rate(model, data["x_test"], data["y_test"], config.eval_batch_size)
    record["eval_seconds"] = round(time.time() - start, 1)
    return model, record


# --------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    _pyplot().close(fig)
    return path


LABELS = {"ann": "ReLU ANN", "quantized": "quantized ANN (Eq. 11)",
          "tandem": "tandem SNN, membrane decoding", "tandem_spike": "tandem SNN, spike-count decoding"}


def plot_fig8a(curves: dict[str, list[float]], path: str) -> str:
    """Fig. 8A: validation error (%) per epoch of the four training schemes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for key, errors in curves.items():
        ax.plot(np.arange(1, len(errors) + 1), 100 * np.asarray(errors), "o-", label=LABELS[key])
    ax.set_xticks(np.arange(1, max(len(e) for e in curves.values()) + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_fig8b(sweep: dict[str, dict[int, float]], path: str) -> str:
    """Fig. 8B (+ Fig. 7A): validation error (%) against T for tandem, quantized ANN and
    constrain-then-train."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    names = {"tandem": "tandem SNN", "quantized": "quantized ANN",
             "ctt": "constrain-then-train SNN (quantized ANN weights)"}
    for key, by_t in sweep.items():
        ts = sorted(by_t)
        ax.plot(ts, [100 * by_t[t] for t in ts], "o-", label=names[key])
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({t for v in sweep.values() for t in v}))
    ax.get_xaxis().set_major_formatter(_pyplot().matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("encoding window T")
    ax.set_ylabel("validation error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_fig7c(rows_by_label: dict[str, list[dict]], path: str) -> str:
    """Fig. 7C: mean |c - a| per neuron against layer, one line per model / window."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    names = None
    for label, rows in rows_by_label.items():
        names = [r["name"] for r in rows]
        ax.plot(np.arange(len(rows)), [r["mean_abs_diff"] for r in rows], "o-", label=label)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("mean |c - a| per neuron (spikes)")
    ax.set_title("SNN spike count vs quantized-ANN count, same weights", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return _save(fig, path)


def plot_synops(reports: dict[int, dict], path: str) -> str:
    """Table II: operations per receiving layer, SNN accumulates (spikes x fan-out of the
    layer below, Eq. 13) against ANN MACs (Eq. 14), one bar group per T.

    The analog encoder convolution runs once on the image: its MACs are drawn for the SNN
    too (they are in ``synops_ratio_with_encoder``, not in ``synops_ratio``).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ts = sorted(reports)
    layers = reports[ts[0]]["layers"]
    names = [e["name"] for e in layers]
    total_ann = reports[ts[0]]["synops_ann"]
    width = 0.8 / len(ts)
    for i, t in enumerate(ts):
        rows = reports[t]["layers"]
        sent = [e["synops"] for e in rows if e["avg_spike_count"] is not None]
        received = [reports[t]["encoder_macs"]] + sent  # spikes of layer l land in layer l+1
        received += [0.0] * (len(names) - len(received))
        ax.bar(np.arange(len(names)) + (i - (len(ts) - 1) / 2) * width,
               np.asarray(received[:len(names)]) / total_ann, width,
               label=f"SNN, T={t}: ratio {reports[t]['synops_ratio']:.3f} "
                     f"({reports[t]['synops_ratio_with_encoder']:.3f} with encoder)")
    ax.plot(np.arange(len(names)), [e["ann_macs"] / total_ann for e in layers], "k_",
            markersize=14, mew=2, label="ANN MACs")
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("operations / total ANN MACs")
    ax.set_title("operations per receiving layer", fontsize=8)
    ax.legend(fontsize=6)
    return _save(fig, path)


# --------------------------------------------------------------------------- findings


def _products(model: keras.Model, spec: dict, values: np.ndarray) -> np.ndarray:
    """``W * values`` of the weighted layer described by a ``synops`` spec, ``[batch, -1]``."""
    layer = model.get_layer(spec["layer"])
    kernel = tf.cast(layer.kernel, tf.float32)
    x = tf.constant(values.reshape((len(values), *spec["input_shape"])), tf.float32)
    if spec["type"] == "conv2d":
        out = tf.nn.conv2d(x, kernel, strides=list(spec["strides"]), padding=spec["padding"].upper())
    else:
        out = tf.tensordot(x, kernel, axes=1)
    return out.numpy().reshape(len(values), -1)


def floored_preservation(model: keras.Model, preservation: dict) -> dict:
    """Fig. 9 with the paper's integer ANN counts ``floor(a)`` (Eq. 11) instead of the
    unrounded ``a = clip(V_f / theta, 0, T)`` of ``analysis.direction_preservation``:
    angles between ``c`` and ``floor(a)`` and the PCC of ``W_next c`` and ``W_next floor(a)``."""
    rows = {r["name"]: r for r in activity.describe_model(model)["layers"]}
    result = {}
    for name, entry in preservation.items():
        c, a = entry["snn_counts"], np.floor(entry["ann_counts"])
        pcc = None
        specs = rows[name]["fanout_specs"]
        if specs:
            pcc = analysis.pearson(np.concatenate([_products(model, s, c) for s in specs], 1),
                                   np.concatenate([_products(model, s, a) for s in specs], 1))
        result[name] = {"snn_counts": c, "ann_counts": a,
                        "angle_deg": analysis.cosine_angle_degrees(c, a), "pcc": pcc}
    return result


def summarize_fig9(preservation: dict, floored: dict) -> list[dict]:
    """Per layer: mean angle and mean / median PCC, to the unrounded coupled-ANN output ``a``
    (``angle_deg``, ``pcc``, ``pcc_median``) and to the paper's Eq. 11 counts ``floor(a)``
    (``angle_deg_floor``, ``pcc_floor``, ``pcc_floor_median``); NaN examples left out."""

    def mean(v):
        v = np.asarray(v if v is not None else [], float)
        return float(np.nanmean(v)) if np.isfinite(v).any() else None

    def median(v):
        v = np.asarray(v if v is not None else [], float)
        return float(np.nanmedian(v)) if np.isfinite(v).any() else None

    rows = []
    for name, entry in preservation.items():
        low = floored[name]
        rows.append({"name": name, "angle_deg": mean(entry["angle_deg"]), "pcc": mean(entry["pcc"]),
                     "pcc_median": median(entry["pcc"]), "angle_deg_floor": mean(low["angle_deg"]),
                     "pcc_floor": mean(low["pcc"]), "pcc_floor_median": median(low["pcc"])})
    return rows


def _points(fraction: float) -> float:
    return round(100.0 * fraction, 2)


def _verdict(checks: list[tuple[str, bool]]) -> str:
    """``"yes"`` if every check holds, ``"no"`` if none, else ``"partly (<holding> only)"``."""
    held = [name for name, ok in checks if ok]
    if len(held) == len(checks):
        return "yes"
    return "no" if not held else f"partly ({', '.join(held)} only)"


def assess(results: dict) -> list[dict]:
    """The five findings as rows ``{"finding", "measured", "paper", "reproduced"}``."""
    runs, cfg = results["runs"], results["config"]
    t_main = cfg["time_steps"]
    rows = []
    q, tm, ts = (runs[f"quantized_T{t_main}"]["val_error"], runs[f"tandem_T{t_main}"]["val_error"],
                 runs[f"tandem_spike_T{t_main}"]["val_error"])
    rows.append({
        "finding": "1. Fig. 8A: tandem SNN within ~1.5 points of the quantized ANN",
        "measured": (f"T={t_main} validation error: ReLU ANN {_points(runs['ann']['val_error'])}%, "
                     f"quantized ANN {_points(q)}%, tandem membrane {_points(tm)}% "
                     f"({_points(tm - q):+.2f}), tandem spike-count {_points(ts)}% ({_points(ts - q):+.2f}; "
                     f"tied top logits on {_points(runs[f'tandem_spike_T{t_main}'].get('val_tie_fraction', float('nan')))}% of images)"),
        "paper": "CIFARNet T=10 test error: SNN 8.46% (spike count) / 9.93% (membrane); SNN "
                 "matches the bounded CNN in the end, converges slower than the plain CNN",
        "reproduced": _verdict([("membrane decoding", _points(tm - q) <= 1.5),
                                ("spike-count decoding", _points(ts - q) <= 1.5)])})
    ctt = results["constrain_then_train"]
    margins = {t: _points(ctt[str(t)]["ctt_error"] - runs[f"tandem_T{t}"]["val_error"])
               for t in cfg["sweep_time_steps"]}
    rows_7c = ctt[str(t_main)]["representation_error"]
    diffs = [r["mean_abs_diff"] for r in rows_7c if r["name"] != "encoder"]
    grows = bool(len(diffs) > 1 and diffs[-1] > diffs[0]
                 and sum(b >= a for a, b in zip(diffs, diffs[1:])) >= len(diffs) // 2)
    rows.append({
        "finding": "2. Sec. III-C / Fig. 7: constrain-then-train loses more than tandem; "
                   "discrepancy grows with depth",
        "measured": ("CTT minus tandem error (points) per T: "
                     + ", ".join(f"T={t}: {m:+.2f}" for t, m in margins.items())
                     + f"; mean |c-a| per layer at T={t_main}: "
                     + ", ".join(f"{d:.3f}" for d in diffs)),
        "paper": "~11% accuracy drop for CTT at T=10 on CIFAR-10; discrepancy grows with depth",
        "reproduced": _verdict([("CTT worse at every T", all(m > 0 for m in margins.values())),
                                ("discrepancy grows with depth", grows)])})
    sweep = {t: runs[f"tandem_T{t}"]["val_error"] for t in cfg["sweep_time_steps"]}
    ts_sorted = sorted(sweep)
    falls = sweep[ts_sorted[-1]] < sweep[ts_sorted[0]]
    steps = [sweep[a] - sweep[b] for a, b in zip(ts_sorted, ts_sorted[1:])]
    flattens = len(steps) < 2 or steps[-1] < steps[0]
    rows.append({
        "finding": "3. Fig. 8B: error falls with T and flattens",
        "measured": ", ".join(f"T={t}: {_points(e)}%" for t, e in sweep.items()),
        "paper": "below 12% at T=1, falling with T, no gain beyond T=10",
        "reproduced": _verdict([("falls", falls), ("flattens", flattens)])})
    syn = results["synops"]
    rows.append({
        "finding": "4. Table II: SynOps SNN/ANN ratio below 1",
        "measured": ", ".join(f"T={t}: {syn[t]['synops_ratio']:.3f} (with encoder MACs "
                              f"{syn[t]['synops_ratio_with_encoder']:.3f})" for t in syn),
        "paper": "AlexNet, CIFAR-10: 0.40 at T=10, 0.27 at T=5",
        "reproduced": _verdict([("ratio < 1", all(syn[t]["synops_ratio"] < 1 for t in syn))])})
    fig9 = results["direction_preservation"]

    def finite(values):
        return [v for v in values if v is not None and np.isfinite(v)]

    angles = finite(r.get("angle_deg_floor") for r in fig9)
    pccs = finite(r.get("pcc_floor_median") for r in fig9)
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    rows.append({
        "finding": "5. Fig. 9: small angle between ANN and SNN counts, PCC of W c and W a high",
        "measured": ("mean angle (deg) between c and floor(a) (Eq. 11) [and unrounded a]: "
                     + ", ".join(f"{r['name']} {fmt(r.get('angle_deg_floor'), '.1f')} "
                                 f"[{fmt(r.get('angle_deg'), '.1f')}]" for r in fig9)
                     + "; median PCC of W c, W floor(a) [unrounded a]: "
                     + ", ".join(f"{r['name']} {fmt(r.get('pcc_floor_median'), '.3f')} "
                                 f"[{fmt(r.get('pcc_median'), '.3f')}]" for r in fig9
                                 if r.get("pcc_floor_median") is not None)),
        "paper": "angles below 24 degrees on average, PCC above 0.9 for most samples",
        "reproduced": _verdict([("angle", bool(angles) and float(np.mean(angles)) < 24),
                                ("PCC", bool(pccs) and min(pccs) > 0.9)])})
    return rows


def markdown(results: dict) -> str:
    """The findings table and the run list, as Markdown."""
    lines = ["| finding | measured | paper | reproduced |", "|---|---|---|---|"]
    for row in results["findings"]:
        lines.append(f"| {row['finding']} | {row['measured']} | {row['paper']} | "
                     f"{row['reproduced']} |")
    lines += ["", "| run | mode | T | decode | val error | train s | eval s |", "|---|---|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        lines.append(f"| {name} | {r['mode']} | {r['time_steps']} | {r['decode']} | "
                     f"{_points(r['val_error'])}% | {r['train_seconds']} | {r['eval_seconds']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def run(config: Config) -> dict:
    """Trains every model of ``config``, measures the five findings, writes figures and results."""
    wall = time.time()
    figures_dir = config.figures_dir or os.path.join(config.out_dir, "figures")
    os.makedirs(os.path.join(config.out_dir, "models"), exist_ok=True)
    data = load_data(config)
    logging.info("data: %d train, %d validation images %s (of %s)", len(data["y_train"]),
                 len(data["y_val"]), data["image_shape"], data["available"])
    x_analysis = data["x_val"][:config.analysis_examples]
    t_main = config.time_steps
    ctt_ts = sorted(set(config.sweep_time_steps) | {t_main})
    tandem_ts = sorted(set(config.sweep_time_steps) | set(config.synops_time_steps) | {t_main})
    runs, models_by_name = {}, {}

    def train(name, *args, **kwargs):
        logging.info("training %s", name)
        models_by_name[name], runs[name] = train_one(config, data, *args, **kwargs)
        models_by_name[name].save(os.path.join(config.out_dir, "models", f"{name}.keras"))
        logging.info("%s: validation error %.4f, %.0f s train, %.0f s eval", name,
                     runs[name]["val_error"], runs[name]["train_seconds"], runs[name]["eval_seconds"])

    train("ann", "ann", t_main, curve=True)
    for t in ctt_ts:
        train(f"quantized_T{t}", "quantized", t, curve=(t == t_main))
    train(f"tandem_T{t_main}", "tandem", t_main, curve=True, fig9_x=x_analysis)
    train(f"tandem_spike_T{t_main}", "tandem", t_main, decode="spike_count", curve=True)
    for t in tandem_ts:
        if t != t_main:
            train(f"tandem_T{t}", "tandem", t)

    # 2. constrain-then-train: the quantized ANN's weights run as the SNN.
    ctt = {}
    for t in ctt_ts:
        quantized = models_by_name[f"quantized_T{t}"]
        snn = tk.with_mode(quantized, "tandem")
        ctt[t] = {"quantized_error": runs[f"quantized_T{t}"]["val_error"],
                  "ctt_error": error_rate(snn, data["x_val"], data["y_val"], config.eval_batch_size),
                  "representation_error": analysis.representation_error(
                      quantized, x_analysis, batch_size=config.eval_batch_size)}
        if "x_test" in data:
            ctt[t]["ctt_test_error"] = error_rate(snn, data["x_test"], data["y_test"], config.eval_batch_size)
    tandem_discrepancy = analysis.representation_error(
        models_by_name[f"tandem_T{t_main}"], x_analysis, batch_size=config.eval_batch_size)

    # 4. SynOps of the trained SNNs.
    x_syn = data["x_val"][:config.synops_examples]
    synops_reports = {t: activity.count_synops(models_by_name[f"tandem_T{t}"], x_syn,
                                             batch_size=config.eval_batch_size)
                      for t in config.synops_time_steps}

    # 5. Fig. 9 on the main tandem model.
    preservation = analysis.direction_preservation(models_by_name[f"tandem_T{t_main}"], x_analysis,
                                                   batch_size=config.eval_batch_size)
    preservation_floor = floored_preservation(models_by_name[f"tandem_T{t_main}"], preservation)

    prefix = os.path.join(figures_dir, f"cifar10_{config.budget}_")
    figures = {
        "fig8a": plot_fig8a({"ann": runs["ann"]["val_error_per_epoch"],
                             "quantized": runs[f"quantized_T{t_main}"]["val_error_per_epoch"],
                             "tandem": runs[f"tandem_T{t_main}"]["val_error_per_epoch"],
                             "tandem_spike": runs[f"tandem_spike_T{t_main}"]["val_error_per_epoch"]},
                            prefix + "fig8a_schemes.png"),
        "fig8b": plot_fig8b({"tandem": {t: runs[f"tandem_T{t}"]["val_error"] for t in config.sweep_time_steps},
                             "quantized": {t: ctt[t]["quantized_error"] for t in config.sweep_time_steps},
                             "ctt": {t: ctt[t]["ctt_error"] for t in config.sweep_time_steps}},
                            prefix + "fig8b_time_steps.png"),
        "fig7c": plot_fig7c({**{f"constrain-then-train, T={t}": ctt[t]["representation_error"]
                                for t in ctt_ts},
                             f"tandem-trained weights, T={t_main}": tandem_discrepancy},
                            prefix + "fig7c_discrepancy.png"),
        "table2": plot_synops(synops_reports, prefix + "table2_synops.png"),
        "fig9": plots.plot_direction_preservation(preservation_floor, prefix + "fig9_angle_pcc.png"),
        "fig9_unrounded": plots.plot_direction_preservation(
            preservation, prefix + "fig9_angle_pcc_unrounded.png"),
        "fig11": plots.plot_spike_counts([synops_reports[t] for t in config.synops_time_steps],
                                         prefix + "fig11_spike_counts.png"),
    }
    try:
        from bench._common import machine
        machine_info = machine()
    except Exception:  # the performance helper's module; optional here
        machine_info = {"cpu": platform.processor(), "cores": str(os.cpu_count())}
    results = {
        "command": "python -m bench.reproduce_cifar10 " + " ".join(sys.argv[1:]),
        "config": dataclasses.asdict(config),
        "machine": machine_info,
        "data": {"train": len(data["y_train"]), "validation": len(data["y_val"]),
                 "test": len(data.get("y_test", [])), "image_shape": list(data["image_shape"])},
        "runs": runs,
        "constrain_then_train": {str(t): v for t, v in ctt.items()},
        "tandem_representation_error": tandem_discrepancy,
        "synops": {t: {k: v for k, v in r.items()} for t, r in synops_reports.items()},
        "direction_preservation": summarize_fig9(preservation, preservation_floor),
        "figures": figures,
    }
    results["findings"] = assess(results)
    results["wall_seconds"] = round(time.time() - wall, 1)
    results = _jsonable(results)
    with open(os.path.join(config.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(config.out_dir, "results.md"), "w") as f:
        f.write(markdown(results) + "\n")
    return results


FLAGS = flags.FLAGS
flags.DEFINE_enum("budget", "small", list(BUDGETS), "Preset scale: tiny (tests), small (~9 CPU-min, "
                  "~10-15 min on 2 cores), medium (~1-2 h), full (the paper's recipe, GPU).")
flags.DEFINE_string("train_dir", None, "Image folder <dir>/<class>/*.jpg|png (CIFAR-10 training set).")
flags.DEFINE_string("test_dir", None, "Optional image folder with the same classes (test split).")
flags.DEFINE_string("out_dir", "/tmp/reproduce_cifar10", "Where results.json / results.md go.")
flags.DEFINE_string("figures_dir", None, "Where the PNG figures go (default <out_dir>/figures).")
for _name, _kind in (("width_divisor", "integer"), ("train_size", "integer"), ("val_size", "integer"),
                     ("test_size", "integer"), ("epochs", "integer"), ("batch_size", "integer"),
                     ("time_steps", "integer"), ("analysis_examples", "integer"),
                     ("synops_examples", "integer"), ("seed", "integer"),
                     ("lr_step_epochs", "integer"), ("learning_rate", "float"),
                     ("lr_schedule", "string"), ("augment", "string")):
    getattr(flags, f"DEFINE_{_kind}")(_name, None, f"Override the budget's {_name}.")
flags.DEFINE_list("sweep_time_steps", None, "Override the budget's window sweep (Fig. 8B).")
flags.DEFINE_list("synops_time_steps", None, "Override the budget's SynOps windows (Table II).")


def main(argv: Sequence[str]) -> None:
    del argv
    names = [f.name for f in dataclasses.fields(Config)
             if f.name not in ("budget", "train_dir", "test_dir", "out_dir", "figures_dir",
                               "eval_batch_size", "run_eagerly", "dropout")]
    overrides = {n: getattr(FLAGS, n) for n in names}
    try:
        config = make_config(FLAGS.budget, FLAGS.train_dir, test_dir=FLAGS.test_dir,
                             out_dir=FLAGS.out_dir, figures_dir=FLAGS.figures_dir, **overrides)
    except (ValueError, train_data.DatasetError) as error:
        raise app.UsageError(str(error)) from error
    try:
        results = run(config)
    except train_data.DatasetError as error:  # e.g. a missing or empty image folder
        raise app.UsageError(str(error)) from error
    print(markdown(results))
    print(f"wall time {results['wall_seconds']} s; results in {config.out_dir}")


if __name__ == "__main__":
    app.run(main)
