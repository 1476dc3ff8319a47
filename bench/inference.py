"""Inference of one network, variants side by side: the SNN against the ANN, or input checks.

    python -m bench.inference                                  # CIFARNet/4, T 4,10,16: SNN vs ANN
    python -m bench.inference --network=cifarnet --batch=64
    python -m bench.inference --compare=checks --time_steps=4,10 --repeats=30

``ann`` (record ``inference``): the network in ``mode="tandem"`` (the SNN) and the same weights
in ``mode="ann"`` (``tk.with_mode``), both exported by ``tk.export_model``, reloaded, and their
``serve`` endpoints timed round-robin on one batch. ``checks`` (record ``input_checks``): at
inference the encoder asserts that its input is finite, and a tandem layer that its input is
0/1 unless made by the library's own spiking layers; a compiled inference step
(``tf.function``, no XLA, which drops asserts) traced three times, as shipped, checking every
tandem layer's input, and with no checks, is timed round-robin: per-round ratios to no checks.
"""
from __future__ import annotations

import os
import tempfile

from bench import harness
from bench.harness import flags, keras, np, tk
from bench.tables import inference_table, input_checks_table

FLAGS = flags.FLAGS
flags.DEFINE_enum("compare", "ann", ["ann", "checks"], "The variants (see the docstring).")
flags.DEFINE_string("network", "cifarnet_w4", "A CIFAR builder of models.BUILDERS, optionally _wK.")
flags.DEFINE_list("time_steps", ["4", "10", "16"], "Values of T.")
flags.DEFINE_string("policy", "float32", "Keras dtype policy.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("repeats", 5, "Timed calls per variant (after 3 warm-up calls).")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")
harness.check_network_flag("network")


def _quartiles(values):
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.25, 0.5, 0.75)]


def exported(snn, directory: str) -> dict:
    """The SNN and its ANN exported, reloaded: their ``serve`` endpoints by name."""
    import tensorflow as tf

    served = {}
    for kind, model in (("snn", snn), ("ann", tk.with_mode(snn, "ann"))):
        tk.export.export_model(model, os.path.join(directory, kind), spike_trains=False)
        served[kind] = tf.saved_model.load(os.path.join(directory, kind))
    return served


def checked_variants(model, images) -> tuple[dict, dict]:
    """The compiled inference step as shipped, checking every layer, and unchecked; and the
    number of Assert ops of each (their outputs must be equal)."""
    import tensorflow as tf
    from tandem_keras import _checks
    from tandem_keras.layers import encoding, tandem_layer

    nothing = lambda *args, **kwargs: None  # noqa: E731
    patches = {"shipped": [], "every_layer": [(_checks, "train_kind", lambda tensor: None)],
               "unchecked": [(encoding, "check_finite", nothing), (tandem_layer, "check_spike_values", nothing)]}
    calls, asserts, outputs = {}, {}, {}
    for name, patch in patches.items():
        fn = tf.function(lambda x: model(x, training=False))
        saved = [(module, attribute, getattr(module, attribute)) for module, attribute, _ in patch]
        for module, attribute, value in patch:
            setattr(module, attribute, value)
        try:
            outputs[name] = fn(images).numpy()  # traced with the patch
        finally:
            for module, attribute, value in saved:
                setattr(module, attribute, value)
        asserts[name] = sum(op.type == "Assert" for op in fn.get_concrete_function(images).graph.get_operations())
        calls[name] = lambda fn=fn: fn(images).numpy()
        np.testing.assert_array_equal(outputs[name], outputs["shipped"], err_msg=name)
    return calls, asserts


def main(argv) -> None:
    del argv
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(FLAGS.policy)
    images, rows = tf.constant(harness.synthetic_batch(FLAGS.batch)[0]), []
    with tempfile.TemporaryDirectory() as tmp:
        for t in map(int, FLAGS.time_steps):
            model = harness.compiled_network(FLAGS.network, t, "tandem", compiled=False)
            if FLAGS.compare == "ann":
                calls = {k: (lambda m=m: m.serve(images).numpy())
                         for k, m in exported(model, f"{tmp}/{t}").items()}
            else:
                calls, asserts = checked_variants(model, images)
            for call in calls.values():
                for _ in range(3):
                    call()
            times, cpu = harness.interleaved_timing(calls, FLAGS.repeats)
            wall = {k: harness.median(v) for k, v in times.items()}
            cpu_s = {k: harness.median(v) for k, v in cpu.items()}
            if FLAGS.compare == "ann":
                rows += [{"network": FLAGS.network, "T": t, "model": kind, "batch": FLAGS.batch,
                          "policy": FLAGS.policy, "call_s": times[kind], "cpu_s": cpu[kind], "median_s": wall[kind],
                          "median_cpu_s": cpu_s[kind], "images_per_s": FLAGS.batch / wall[kind],
                          "time_over_ann": wall[kind] / wall["ann"], "cpu_over_ann": cpu_s[kind] / cpu_s["ann"]}
                         for kind in ("snn", "ann")]
                print(f"T={t}: SNN {rows[-2]['images_per_s']:.1f} img/s, ANN {rows[-1]['images_per_s']:.1f} img/s")
                continue
            row = {"network": FLAGS.network, "T": t, "batch": FLAGS.batch, "assert_ops": asserts,
                   "call_s": times, "cpu_s": cpu, "median_s": wall}
            for name in ("shipped", "every_layer"):
                for key, values in (("wall", times), ("cpu", cpu)):
                    row[f"{name}_over_unchecked_{key}_q25_q50_q75"] = _quartiles(
                        [a / b for a, b in zip(values[name], values["unchecked"])])
            rows.append(row)
            print(f"T={t}: shipped / unchecked {row['shipped_over_unchecked_wall_q25_q50_q75'][1]:.3f} (median)")
    if FLAGS.compare == "ann":
        harness.finish("inference", {"rows": rows}, lambda r: inference_table(r, cpu=True), FLAGS.out)
    else:
        harness.finish("input_checks", {"rows": rows}, input_checks_table, FLAGS.out)


if __name__ == "__main__":
    harness.run(main)
