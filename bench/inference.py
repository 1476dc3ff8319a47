"""Benchmark 3: inference images/s of the exported SNN against the exported ANN.

The network is built in ``mode="tandem"`` (the SNN: folded BN, IF dynamics over T) and in
``mode="ann"`` with the same weights (``tk.with_mode``), both exported with
``tk.export.export_model`` (SavedModel), reloaded with ``tf.saved_model.load`` and their
``serve`` endpoints timed round-robin on one batch.

    python -m bench.inference                                # CIFARNet/4 width, T 4, 10, 16
    python -m bench.inference --network=cifarnet --batch=64

Appends a ``bench.records`` record (``bench/results/records.jsonl``) and prints its table
(``bench.tables_perf.inference_table``).
"""
from __future__ import annotations

import os
import tempfile

from bench import _common
from bench._common import flags, keras, tk
from bench.tables_perf import inference_table

FLAGS = flags.FLAGS
flags.DEFINE_string("network", "cifarnet_w4", "cifarnet or cifarnet_wK.")
flags.DEFINE_list("time_steps", ["4", "10", "16"], "Values of T.")
flags.DEFINE_string("policy", "float32", "Keras dtype policy of the exported models.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("repeats", 5, "Timed calls per model (after 2 warm-up calls).")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")
_common.check_network_flag("network")


def exported(model, directory: str):
    """The model exported with ``tk.export.export_model`` and reloaded (its ``serve`` is timed)."""
    import tensorflow as tf

    tk.export.export_model(model, directory, spike_trains=False)
    return tf.saved_model.load(directory)


def main(argv) -> None:
    del argv
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(FLAGS.policy)
    images = tf.constant(_common.synthetic_batch(FLAGS.batch)[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for time_steps in map(int, FLAGS.time_steps):
            snn = _common.build_network(FLAGS.network, time_steps, "tandem")
            loaded = {kind: exported(model, os.path.join(tmp, f"{kind}{time_steps}"))
                      for kind, model in (("snn", snn), ("ann", tk.with_mode(snn, "ann")))}
            calls = {k: (lambda m=m: m.serve(images).numpy()) for k, m in loaded.items()}
            for call in calls.values():
                call(), call()
            times, cpu = _common.interleaved_timing(calls, FLAGS.repeats)
            wall = {k: _common.median(v) for k, v in times.items()}
            cpu_s = {k: _common.median(v) for k, v in cpu.items()}
            for kind in ("snn", "ann"):
                rows.append({"network": FLAGS.network, "T": time_steps, "model": kind,
                             "batch": FLAGS.batch, "policy": FLAGS.policy, "call_s": times[kind],
                             "cpu_s": cpu[kind], "median_s": wall[kind], "median_cpu_s": cpu_s[kind],
                             "images_per_s": FLAGS.batch / wall[kind], "time_over_ann": wall[kind] / wall["ann"],
                             "cpu_over_ann": cpu_s[kind] / cpu_s["ann"]})
            print(f"T={time_steps}: SNN {rows[-2]['images_per_s']:.1f} img/s, ANN "
                  f"{rows[-1]['images_per_s']:.1f} img/s", flush=True)
    _common.finish("inference", {"rows": rows}, lambda r: inference_table(r, cpu=True), FLAGS.out)


if __name__ == "__main__":
    _common.run(main)
