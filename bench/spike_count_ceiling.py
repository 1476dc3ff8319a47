"""How much of spike-count decoding's gap a decision rule can close: the count ceiling.

    python -m bench.spike_count_ceiling --budget=medium --epochs=6 --train_dir=/tmp/cifar/cifar10_jpeg/train \\
        --models=paper_T4.keras,st_T4.keras,paper_T10.keras   # saved by spike_count_decoding --save_dir

For each trained spike-count model (``bench.spike_count_decoding --save_dir``) on the
budget's validation images, the top-1 error under three decision rules on the *same*
output spike counts ``c``:

* ``index``: ``argmax c``, ties to the lower class index (the paper's);
* ``membrane``: ties broken by the output neurons' final membrane potential (the
  library's ``spike_count_tie`` / ``spike_count_st`` rule);
* ``ceiling``: every tie broken in favour of the true class, i.e. an error only where some
  class fired strictly more spikes than the true one. No rule that predicts among the
  classes with the top count can do better: what remains is in the counts themselves.

Appends one ``spike_count_ceiling`` record per model (``bench.records``).

Example:
  >>> ceiling_error(np.array([[2, 2, 0], [1, 3, 0], [0, 0, 0]]), np.array([1, 0, 2]))
  0.3333333333333333
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from bench import _common  # first: TensorFlow's start-up lines held back
from bench import records, tables
from bench import spike_count_decoding as scd  # and the flags of bench.reproduce_cifar10
from bench.cifar10_budgets import _to_arrays, make_config
from bench.cifar10_runs import tie_fraction
from absl import flags
import keras
import numpy as np
import tandem_keras as tk  # noqa: F401  (registers the layers for load_model)
from common import datasets


def ceiling_error(counts: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of examples where some class has strictly more spikes than the true one."""
    true = counts[np.arange(len(labels)), labels]
    return float(np.mean(counts.max(axis=1) > true))


def rules(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
    """Errors of the three decision rules, and the tie statistics, of one model."""
    layer = model.get_layer("logits")
    scale = float(layer.current_scale())
    logits = scd.membrane_rule_logits(model, x, batch_size)  # c + g(V_end), g in [0.01, 0.99]
    counts = np.floor(logits / scale + 1e-4)
    return {"examples": len(y),
            "error_index_rule": float(np.mean(np.argmax(counts, 1) != y)),
            "error_membrane_rule": float(np.mean(np.argmax(logits, 1) != y)),
            "error_ceiling": ceiling_error(counts, y),
            "tie_fraction": tie_fraction(counts),
            "true_class_at_top_count_fraction": float(np.mean(counts[np.arange(len(y)), y] == counts.max(1))),
            "mean_top_count": float(np.mean(counts.max(1)))}


FLAGS = flags.FLAGS  # --budget, --train_dir, --epochs (only for the record), --record_file
flags.DEFINE_list("models", None, "Saved spike-count models (<variant>_T<T>.keras).")


def main(argv: Sequence[str]) -> None:
    del argv
    if not FLAGS.models:
        _common.usage_error("--models is required")
    try:
        config = make_config(FLAGS.budget, FLAGS.train_dir, epochs=FLAGS.epochs)
        source = datasets.load(f"folder:{config.train_dir}", validation_split=0.1)
        x, y = _to_arrays(source.split("validation")[0], config.val_size)
        trained = {path: keras.models.load_model(path) for path in FLAGS.models}
    except (ValueError, OSError, datasets.DatasetError) as error:  # a missing folder or model file
        _common.usage_error(str(error))
    made = []
    for path, model in trained.items():
        variant, t = os.path.basename(path)[:-len(".keras")].rsplit("_T", 1)
        figures = dict(rules(model, x, y, config.eval_batch_size), variant=variant,
                       time_steps=int(t), model_file=os.path.basename(path))
        made.append(records.make("spike_count_ceiling", figures, dataclasses.asdict(config)))
        if FLAGS.record_file:
            records.append(made[-1], FLAGS.record_file)
    print(tables.spike_count_ceiling(made)[0])

if __name__ == "__main__":
    _common.run(main)
