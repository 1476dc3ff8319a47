"""What the layers' inference input checks cost in a compiled step (issue 9, item 6).

At inference the encoder asserts that its input is finite, and a tandem layer that its
input is a spike train (all values 0 or 1) unless the input was made by an IF layer or the
spike encoder (tagged, 0/1 by construction): a compare-and-reduce and a
``tf.debugging.Assert``. This times a compiled inference step
(``tf.function(model(x, training=False))``, no XLA: XLA drops asserts) of the same model
traced three times: as shipped, checking every tandem layer's input (tags ignored), and
with no checks; calls interleaved round-robin; per-round time ratios against no checks.
Appends a ``bench.records`` record and prints its table (``bench.tables_perf.input_checks_table``).

    python -m bench.input_checks                               # CIFARNet/4, T 4 and 10
    python -m bench.input_checks --time_steps=10 --repeats=40
"""

from __future__ import annotations

from bench import _common
from bench._common import flags, np
from bench.tables_perf import input_checks_table

FLAGS = flags.FLAGS
flags.DEFINE_string("network", "cifarnet_w4", "cifarnet or cifarnet_wK.")
flags.DEFINE_list("time_steps", ["4", "10"], "Values of T.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("repeats", 30, "Timed calls per variant (after 3 warm-up calls).")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")
_common.check_network_flag("network")


def _quantiles(values, qs=(0.25, 0.5, 0.75)):
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in qs]


def _trace(model, images, patches):
    """The model's inference step traced with ``patches`` (module, name, value) applied."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, value in patches:
        setattr(module, name, value)
    try:
        output = fn(images).numpy()
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
    asserts = sum(op.type == "Assert" for op in fn.get_concrete_function(images).graph.get_operations())
    return fn, output, asserts


def main(argv) -> None:
    del argv
    import tensorflow as tf
    from tandem_keras import _checks
    from tandem_keras.layers import encoding, tandem_layer

    nothing = lambda *args, **kwargs: None  # noqa: E731
    variants = {
        "shipped": [],
        "every_layer": [(_checks, "is_marked_spikes", lambda tensor: False)],
        "unchecked": [(encoding, "check_finite", nothing),
                      (tandem_layer, "check_spike_values", nothing)],
    }
    images = tf.constant(_common.synthetic_batch(FLAGS.batch)[0])
    rows = []
    for time_steps in map(int, FLAGS.time_steps):
        model = _common.build_network(FLAGS.network, time_steps, "tandem")
        traced = {name: _trace(model, images, patches) for name, patches in variants.items()}
        for name, (_, output, _) in traced.items():
            np.testing.assert_array_equal(output, traced["unchecked"][1], err_msg=name)
        calls = {name: (lambda fn=fn: fn(images).numpy()) for name, (fn, _, _) in traced.items()}
        for call in calls.values():
            for _ in range(3):
                call()
        times, cpu = _common.interleaved_timing(calls, FLAGS.repeats)
        row = {"network": FLAGS.network, "T": time_steps, "batch": FLAGS.batch,
               "assert_ops": {name: t[2] for name, t in traced.items()},
               "call_s": times, "cpu_s": cpu,
               "median_s": {k: _common.median(v) for k, v in times.items()}}
        for name in ("shipped", "every_layer"):
            row[f"{name}_over_unchecked_wall_q25_q50_q75"] = _quantiles(
                [a / b for a, b in zip(times[name], times["unchecked"])])
            row[f"{name}_over_unchecked_cpu_q25_q50_q75"] = _quantiles(
                [a / b for a, b in zip(cpu[name], cpu["unchecked"])])
        rows.append(row)
        print(f"T={time_steps}: shipped / unchecked {row['shipped_over_unchecked_wall_q25_q50_q75'][1]:.3f} "
              "(median of the rounds)", flush=True)
    _common.finish("input_checks", {"rows": rows}, input_checks_table, FLAGS.out)


if __name__ == "__main__":
    _common.run(main)
