"""Why spike-count decoding learns worse, measured side by side (issue 12).

    python -m bench.spike_count_decoding --budget=small \
        --train_dir=/tmp/cifar/cifar10_jpeg/train --variants=paper,scale,st,scale_st

Trains the width-reduced CIFARNet of ``bench.reproduce_cifar10`` (same data split,
recipe, seed and budgets) with one output head per *variant* and writes one JSON record
per run to ``--out_dir`` (``spike_count_<variant>_T<T>_<budget>.json``): the command, the
configuration, the git commit, package versions, machine, date and the figures.

Variants (the hidden network is the same; only the readout and its training differ):

* ``membrane``: the membrane-potential readout (``decode="membrane"``), for reference;
  ``membrane_nodrop`` the same without dropout;
* ``paper``: the paper's spike-count readout (``decode="spike_count"``): IF output neurons
  with the bounded-ReLU coupling, logits = counts, dropout 0.2 on the spike train;
* ``tie``: the paper's readout trained on the membrane-tie-rule logits ``c + g(V_end)``
  (``g`` without gradient; every variant below also has them);
* ``scale``: logits ``(10 / T) * c`` in the loss (candidate a);
* ``lscale``: a learned scale, initialized to ``10 / T`` (candidate a);
* ``st``: the straight-through coupling on the output layer only (candidate b);
* ``nodrop``: the paper's readout without dropout before the output layer (candidate c);
* ``scale_st``, ``scale_st_nodrop``: combinations
  (``tie`` is ``decode="spike_count_tie"`` of ``models``, ``st`` is ``decode="spike_count_st"``).

For every spike-count run the record holds the validation error under both decision
rules on the same trained model: count with ties to the lower class index (the paper's
``argmax``) and count with ties broken by the final membrane potential.

Each run is also appended as a ``spike_count_decoding`` record to ``--record_file``
(default ``bench/results/records.jsonl``). ``python -m bench.tables`` makes the table of
``bench/README_reproduce.md`` from every such record (the latest of each budget, epochs, T
and variant); ``--summarize`` prints the same table (``bench.tables.spike_count_decoding``)::

    python -m bench.spike_count_decoding --summarize
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tandem_keras as tk  # noqa: E402
from bench import records, tables  # noqa: E402
from bench import reproduce_cifar10 as repro  # noqa: E402
from models import cifarnet  # noqa: E402
from tandem_keras import decoding  # noqa: E402

MEMBRANE = ("membrane", "membrane_nodrop")

#: variant -> (scale factor times T (None: 1), trainable, surrogate, dropout before output)
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": dict(scale_t=None, trainable=False, surrogate="bounded_relu", dropout=True),
    "tie": dict(scale_t=None, trainable=False, surrogate="bounded_relu", dropout=True),
    "scale": dict(scale_t=10.0, trainable=False, surrogate="bounded_relu", dropout=True),
    "lscale": dict(scale_t=10.0, trainable=True, surrogate="bounded_relu", dropout=True),
    "st": dict(scale_t=None, trainable=False, surrogate="straight_through", dropout=True),
    "nodrop": dict(scale_t=None, trainable=False, surrogate="bounded_relu", dropout=False),
    "st_nodrop": dict(scale_t=None, trainable=False, surrogate="straight_through", dropout=False),
    "scale_st": dict(scale_t=10.0, trainable=False, surrogate="straight_through", dropout=True),
    "scale_st_nodrop": dict(scale_t=10.0, trainable=False, surrogate="straight_through",
                            dropout=False),
}


def build_variant(config: repro.Config, image_shape, num_classes: int, time_steps: int,
                  variant: str) -> keras.Model:
    """CIFARNet / ``width_divisor`` with the readout of ``variant`` (``"membrane"``: method §4's)."""
    if variant in ("membrane", "membrane_nodrop"):
        if variant == "membrane_nodrop":
            config = dataclasses.replace(config, dropout=0.0)
        return repro.build_model(config, image_shape, num_classes, "tandem", time_steps)
    spec = VARIANTS[variant]
    body = cifarnet(input_shape=tuple(image_shape), num_classes=num_classes, time_steps=time_steps,
                    include_top=False, dropout=config.dropout, width_divisor=config.width_divisor,
                    name=f"cifarnet_w{config.width_divisor}_T{time_steps}_{variant}")
    x = body.get_layer("tandem_dense1").output
    if spec["dropout"] and config.dropout:
        x = keras.layers.Dropout(config.dropout, noise_shape=(None, 1, None), name="dropout")(x)
    surrogate = spec["surrogate"]  # an alias of tk.surrogates
    scale = 1.0 if spec["scale_t"] is None else spec["scale_t"] / time_steps
    logits = decoding.SpikeCountOutput(
        num_classes, scale=scale, trainable_scale=spec["trainable"], surrogate=surrogate,
        tie_break="index" if variant == "paper" else "membrane", dtype="float32",
        name="logits")(x)
    return keras.Model(body.input, logits, name=body.name)


def readout_stats(model: keras.Model, logits: np.ndarray, labels: np.ndarray) -> dict:
    """Errors under both tie rules, tie fraction, top count and silent outputs."""
    layer = model.get_layer("logits")
    stats: dict[str, Any] = {"error": float(np.mean(np.argmax(logits, 1) != labels))}
    if isinstance(layer, decoding.SpikeCountOutput):
        scale = float(layer.current_scale())
        counts = np.floor(logits / scale + 1e-4) if layer.tie_break == "membrane" else np.round(logits / scale)
        stats.update(
            scale=scale,
            error_count_index_rule=float(np.mean(np.argmax(counts, 1) != labels)),
            tie_fraction=repro.tie_fraction(counts),
            mean_top_count=float(np.mean(counts.max(1))),
            all_silent_fraction=float(np.mean(counts.max(1) == 0)),
            correct_class_silent_fraction=float(np.mean(counts[np.arange(len(labels)), labels] == 0)))
    return stats


def membrane_rule_logits(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The logits of ``model`` with its output layer switched to the membrane tie rule."""
    layer = model.get_layer("logits")
    old = layer.tie_break
    layer.tie_break = "membrane"
    try:
        return repro.predict_logits(model, x, batch_size)
    finally:
        layer.tie_break = old


def git_commit() -> str:
    """HEAD of the repository when the record is written, marked if the code differs from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "tandem_keras",
                                "models", "bench/spike_count_decoding.py", "bench/reproduce_cifar10.py"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment() -> dict:
    return {"git_commit": git_commit(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "cpu": repro_machine_cpu(), "loadavg_1_5_15": list(os.getloadavg()),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def repro_machine_cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_variant(config: repro.Config, data: dict, variant: str, time_steps: int) -> dict:
    """Trains one variant with the shared recipe and measures it on the validation split."""
    keras.utils.set_random_seed(config.seed)
    model = build_variant(config, data["image_shape"], data["num_classes"], time_steps, variant)
    steps = len(data["y_train"]) // config.batch_size
    model.compile(optimizer=keras.optimizers.Adam(repro.learning_rate(config, steps)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[tk.metrics.SparseTopKAccuracy(k=1, name="accuracy")])
    monitor = repro.EpochMonitor(data["x_val"], data["y_val"], config.eval_batch_size)
    start = time.time()
    history = model.fit(repro.train_dataset(config, data["x_train"], data["y_train"], data["image_shape"]),
                        epochs=config.epochs, steps_per_epoch=steps, verbose=0, shuffle=False,
                        callbacks=[monitor])
    record: dict[str, Any] = {
        "variant": variant, "time_steps": time_steps,
        "readout": VARIANTS.get(variant, {"decode": "membrane", "dropout": variant == "membrane"}),
        "train_seconds": round(time.time() - start, 1),
        "train_loss": [float(v) for v in history.history["loss"]],
        "train_accuracy": [float(v) for v in history.history["accuracy"]],
        "val_error_per_epoch": monitor.errors,
        "val": readout_stats(model, monitor.last_logits, data["y_val"]),
    }
    if variant == "paper":
        logits = membrane_rule_logits(model, data["x_val"], config.eval_batch_size)
        record["val_membrane_tie_rule_error"] = float(np.mean(np.argmax(logits, 1) != data["y_val"]))
    if "x_test" in data:
        logits = repro.predict_logits(model, data["x_test"], config.eval_batch_size)
        record["test"] = readout_stats(model, logits, data["y_test"])
    return record, model


FLAGS = flags.FLAGS
# --budget, --train_dir, --test_dir, --out_dir, --time_steps, --epochs, --train_size, --seed,
# ...: the flags of bench.reproduce_cifar10 (imported above), same meaning.
flags.DEFINE_string("save_dir", None, "Optional: save each trained model as <variant>_T<T>.keras here.")
flags.DEFINE_bool("summarize", False, "Only print the Markdown table of the spike_count_decoding "
                  "records of --record_file (bench.tables.spike_count_decoding, the table "
                  "python -m bench.tables writes into bench/README_reproduce.md) and exit.")
flags.DEFINE_list("variants", ["membrane", "paper", "scale_st"],
                  f"Any of {', '.join(MEMBRANE)}, {', '.join(VARIANTS)}.")


def main(argv: Sequence[str]) -> None:
    del argv
    if FLAGS.summarize:
        print(tables.spike_count_decoding(records.read(FLAGS.record_file or records.RECORDS))[0])
        return
    unknown = [v for v in FLAGS.variants if v not in MEMBRANE and v not in VARIANTS]
    if unknown:
        raise app.UsageError(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(MEMBRANE)}, "
                             f"{', '.join(VARIANTS)}")
    try:
        config = repro.make_config(FLAGS.budget, FLAGS.train_dir, test_dir=FLAGS.test_dir,
                                   time_steps=FLAGS.time_steps, epochs=FLAGS.epochs,
                                   train_size=FLAGS.train_size, val_size=FLAGS.val_size,
                                   learning_rate=FLAGS.learning_rate, width_divisor=FLAGS.width_divisor,
                                   seed=FLAGS.seed)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    os.makedirs(FLAGS.out_dir, exist_ok=True)
    data = repro.load_data(config)
    command = "python -m bench.spike_count_decoding " + " ".join(sys.argv[1:])
    for variant in FLAGS.variants:
        logging.info("training %s at T=%d", variant, config.time_steps)
        record, model = run_variant(config, data, variant, config.time_steps)
        record = {"command": command, "config": dataclasses.asdict(config),
                  "data": {"train": len(data["y_train"]), "validation": len(data["y_val"]),
                           "test": len(data.get("y_test", []))},
                  "environment": environment(), **record}
        path = os.path.join(FLAGS.out_dir, f"spike_count_{variant}_T{config.time_steps}_{config.budget}.json")
        with open(path, "w") as f:
            json.dump(repro._jsonable(record), f, indent=1)
        if FLAGS.record_file:  # the bench.records record (flag of bench.reproduce_cifar10)
            records.write("spike_count_decoding", {k: v for k, v in record.items()
                                                   if k not in ("command", "config", "environment")},
                          record["config"], path=FLAGS.record_file)
        if FLAGS.save_dir:
            os.makedirs(FLAGS.save_dir, exist_ok=True)
            model.save(os.path.join(FLAGS.save_dir, f"{variant}_T{config.time_steps}.keras"))
        val = record["val"]
        print(f"{variant:>16s} T={config.time_steps}: val error {100 * val['error']:.2f}%"
              + (f" (count + index rule {100 * val['error_count_index_rule']:.2f}%, ties "
                 f"{100 * val['tie_fraction']:.1f}%, all silent {100 * val['all_silent_fraction']:.1f}%)"
                 if "tie_fraction" in val else "")
              + (f", membrane tie rule {100 * record['val_membrane_tie_rule_error']:.2f}%"
                 if "val_membrane_tie_rule_error" in record else "")
              + f", train {record['train_seconds']} s", flush=True)


if __name__ == "__main__":
    app.run(main)
