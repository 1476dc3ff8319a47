"""Why spike-count decoding learns worse, measured side by side (issue 12).

    python -m bench.spike_count_decoding --budget=small \
        --train_dir=/tmp/cifar/cifar10_jpeg/train --variants=paper,scale,st,scale_st

Trains the width-reduced CIFARNet of ``bench.reproduce_cifar10`` (same data split,
recipe, seed and budgets) with one output head per *variant*, compiled by ``train.recipe``,
and appends every run as a ``spike_count_decoding`` record (``bench.records``: the command,
the configuration, the commit, package versions, machine, date and the figures) to
``--record_file`` (default ``bench/results/records.jsonl``).

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

``python -m bench.tables`` makes the table of ``bench/README_reproduce.md`` from every such
record (the latest of each budget, epochs, T and variant); ``--summarize`` prints the same
table (``bench.tables.spike_count_decoding``)::

    python -m bench.spike_count_decoding --summarize
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from bench import _common  # first: TensorFlow's start-up lines held back
from bench import records, tables
from bench import reproduce_cifar10  # noqa: F401  (its flags: --budget, --train_dir, ..., same meaning)
from bench.cifar10_budgets import Config, load_data, make_config, recipe_values
from bench.cifar10_runs import EpochMonitor, fit, predict_logits, tie_fraction
from absl import flags, logging
import keras
import numpy as np
from models import cifarnet
from tandem_keras import decoding
from train import recipe
from common.datasets import DatasetError

MEMBRANE = ("membrane", "membrane_nodrop")


def _readout(scale_t=None, trainable=False, surrogate="bounded_relu", dropout=True) -> dict[str, Any]:
    """A spike-count readout: logits ``(scale_t / T) c`` (``None``: ``c``), the scale learned
    or not, the output layer's coupling (a ``tk.surrogates`` alias), dropout before it."""
    return dict(scale_t=scale_t, trainable=trainable, surrogate=surrogate, dropout=dropout)


VARIANTS: dict[str, dict[str, Any]] = {
    "paper": _readout(), "tie": _readout(), "scale": _readout(10.0), "lscale": _readout(10.0, trainable=True),
    "st": _readout(surrogate="straight_through"), "nodrop": _readout(dropout=False),
    "st_nodrop": _readout(surrogate="straight_through", dropout=False),
    "scale_st": _readout(10.0, surrogate="straight_through"),
    "scale_st_nodrop": _readout(10.0, surrogate="straight_through", dropout=False),
}


def build_variant(config: Config, image_shape, num_classes: int, time_steps: int,
                  variant: str) -> keras.Model:
    """CIFARNet / ``width_divisor`` with the readout of ``variant`` (``"membrane"``: method §4's)."""
    if variant in MEMBRANE:
        config = dataclasses.replace(config, dropout=0.0) if variant == "membrane_nodrop" else config
        return recipe.build_model(recipe_values(config, "tandem", time_steps), image_shape, num_classes)
    spec = VARIANTS[variant]
    body = cifarnet(input_shape=tuple(image_shape), num_classes=num_classes, time_steps=time_steps,
                    include_top=False, dropout=config.dropout, width_divisor=config.width_divisor,
                    name=f"cifarnet_w{config.width_divisor}_T{time_steps}_{variant}")
    x = body.get_layer("tandem_dense1").output
    if spec["dropout"] and config.dropout:
        x = keras.layers.Dropout(config.dropout, noise_shape=(None, 1, None), name="dropout")(x)
    logits = decoding.SpikeCountOutput(
        num_classes, scale=1.0 if spec["scale_t"] is None else spec["scale_t"] / time_steps,
        trainable_scale=spec["trainable"], surrogate=spec["surrogate"],
        tie_break="index" if variant == "paper" else "membrane", dtype="float32", name="logits")(x)
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
            tie_fraction=tie_fraction(counts),
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
        return predict_logits(model, x, batch_size)
    finally:
        layer.tie_break = old


def run_variant(config: Config, data: dict, variant: str, time_steps: int) -> tuple[dict, keras.Model]:
    """Trains one variant with the shared recipe and measures it on the validation split;
    returns the record's figures and the model."""
    keras.utils.set_random_seed(config.seed)
    model = build_variant(config, data["image_shape"], data["num_classes"], time_steps, variant)
    recipe.compile_model(model, recipe_values(config, "tandem", time_steps), data["num_classes"],
                         len(data["y_train"]) // config.batch_size)
    monitor = EpochMonitor(data["x_val"], data["y_val"], config.eval_batch_size)
    history, seconds = fit(config, data, model, monitor)
    figures: dict[str, Any] = {
        "variant": variant, "time_steps": time_steps,
        "readout": VARIANTS.get(variant, {"decode": "membrane", "dropout": variant == "membrane"}),
        "train_seconds": seconds, "train_loss": history["loss"], "train_accuracy": history["top1"],
        "val_error_per_epoch": monitor.errors, "val": readout_stats(model, monitor.last_logits, data["y_val"]),
    }
    if variant == "paper":
        logits = membrane_rule_logits(model, data["x_val"], config.eval_batch_size)
        figures["val_membrane_tie_rule_error"] = float(np.mean(np.argmax(logits, 1) != data["y_val"]))
    if "x_test" in data:
        figures["test"] = readout_stats(model, predict_logits(model, data["x_test"], config.eval_batch_size),
                                        data["y_test"])
    figures["data"] = {"train": len(data["y_train"]), "validation": len(data["y_val"]),
                       "test": len(data.get("y_test", []))}
    return figures, model


FLAGS = flags.FLAGS
flags.DEFINE_string("save_dir", None, "Optional: save each trained model as <variant>_T<T>.keras here.")
flags.DEFINE_bool("summarize", False, "Only print the Markdown table of the spike_count_decoding "
                  "records of --record_file (bench.tables.spike_count_decoding, the table "
                  "python -m bench.tables writes into bench/README_reproduce.md) and exit.")
flags.DEFINE_list("variants", ["membrane", "paper", "scale_st"],
                  f"Any of {', '.join(MEMBRANE)}, {', '.join(VARIANTS)}.")


def main(argv: Sequence[str]) -> None:
    del argv
    if FLAGS.summarize:
        print(tables.spike_count_decoding(records.read(FLAGS.record_file))[0])
        return
    unknown = [v for v in FLAGS.variants if v not in MEMBRANE and v not in VARIANTS]
    if unknown:
        _common.usage_error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(MEMBRANE)}, "
                             f"{', '.join(VARIANTS)}")
    try:
        config = make_config(FLAGS.budget, FLAGS.train_dir, test_dir=FLAGS.test_dir, time_steps=FLAGS.time_steps,
                             epochs=FLAGS.epochs, train_size=FLAGS.train_size, val_size=FLAGS.val_size,
                             learning_rate=FLAGS.learning_rate, width_divisor=FLAGS.width_divisor, seed=FLAGS.seed)
        data = load_data(config)
    except (ValueError, DatasetError) as error:  # e.g. a missing or empty image folder
        _common.usage_error(str(error))
    made = []
    for variant in FLAGS.variants:
        logging.info("training %s at T=%d", variant, config.time_steps)
        figures, model = run_variant(config, data, variant, config.time_steps)
        made.append(records.make("spike_count_decoding", figures, dataclasses.asdict(config)))
        if FLAGS.record_file:
            records.append(made[-1], FLAGS.record_file)
        if FLAGS.save_dir:
            os.makedirs(FLAGS.save_dir, exist_ok=True)
            model.save(os.path.join(FLAGS.save_dir, f"{variant}_T{config.time_steps}.keras"))
    print(tables.spike_count_decoding(made)[0])

if __name__ == "__main__":
    _common.run(main)
