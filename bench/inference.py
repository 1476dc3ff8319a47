"""Benchmark 3: inference images/s of the exported SNN against the exported ANN.

The network is built in ``mode="tandem"`` (the SNN: folded BN, IF dynamics over T) and in
``mode="ann"`` with the same weights (``tk.with_mode``), both exported with
``tk.export.export_model`` (SavedModel), reloaded with ``tf.saved_model.load`` and their
``serve`` endpoints timed round-robin on one batch.

    python -m bench.inference                                # CIFARNet/4 width, T 4, 10, 16
    python -m bench.inference --network=cifarnet --batch=64

Appends a ``bench.records`` record (``bench/results/records.jsonl``) and prints a Markdown table.
"""

from __future__ import annotations

import os
import tempfile

from absl import app, flags

from bench import _common

FLAGS = flags.FLAGS
flags.DEFINE_string("network", "cifarnet_w4", "cifarnet or cifarnet_wK.")
flags.DEFINE_list("time_steps", ["4", "10", "16"], "Values of T.")
flags.DEFINE_string("policy", "float32", "Keras dtype policy of the exported models.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("repeats", 5, "Timed calls per model (after 2 warm-up calls).")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")


_LOADED = []


def export_and_load(model, directory: str):
    """Exports with ``tk.export.export_model`` and returns the reloaded ``serve`` function."""
    import tensorflow as tf
    from tandem_keras import export

    export.export_model(model, directory, spike_trains=False)
    loaded = tf.saved_model.load(directory)
    _LOADED.append(loaded)  # keep the object (and its variables) alive
    return loaded.serve


def main(argv) -> None:
    del argv
    import keras
    import tensorflow as tf
    import tandem_keras as tk

    keras.mixed_precision.set_global_policy(FLAGS.policy)
    images = tf.constant(_common.synthetic_batch(FLAGS.batch)[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for time_steps in map(int, FLAGS.time_steps):
            snn = _common.build_network(FLAGS.network, time_steps, "tandem")
            ann = tk.with_mode(snn, "ann")
            serves = {"snn": export_and_load(snn, os.path.join(tmp, f"snn{time_steps}")),
                      "ann": export_and_load(ann, os.path.join(tmp, f"ann{time_steps}"))}
            calls = {k: (lambda f=f: f(images).numpy()) for k, f in serves.items()}
            for call in calls.values():
                call(), call()
            cpu = {}
            times = _common.interleaved_timing(calls, FLAGS.repeats, cpu)
            medians = {k: _common.median(v) for k, v in times.items()}
            cpu_medians = {k: _common.median(v) for k, v in cpu.items()}
            for kind in ("snn", "ann"):
                rows.append({"network": FLAGS.network, "T": time_steps, "model": kind,
                             "batch": FLAGS.batch, "policy": FLAGS.policy, "call_s": times[kind],
                             "cpu_s": cpu[kind], "median_s": medians[kind],
                             "median_cpu_s": cpu_medians[kind],
                             "images_per_s": FLAGS.batch / medians[kind],
                             "time_over_ann": medians[kind] / medians["ann"],
                             "cpu_over_ann": cpu_medians[kind] / cpu_medians["ann"]})
            print(rows[-2:], flush=True)
    lines = ["| network | T | model | img/s | call s (median) | CPU s (median) | time / ANN | CPU / ANN |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['T']} | {r['model']} | {r['images_per_s']:.1f} | "
                     f"{r['median_s']:.3f} | {r['median_cpu_s']:.3f} | {r['time_over_ann']:.2f} | "
                     f"{r['cpu_over_ann']:.2f} |")
    print("\n".join(lines))
    _common.write_record("inference", {"rows": rows}, FLAGS.out)


if __name__ == "__main__":
    app.run(main)
