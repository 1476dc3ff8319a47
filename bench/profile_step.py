"""Benchmark 4: where the time of one tandem training step goes (TensorFlow profiler).

Profiles ``--steps`` training steps (after two warm-up steps) with
``tf.profiler.experimental``, converts the trace to the profiler's
``framework_op_stats`` table and sums the ops' self time by category, from the name
scopes the core sets (``per_step_products``, ``integrate_and_fire``,
``batch_norm_fold``, ``time_sums``, ``coupled_ann_backward``, ``coupling_backward``)
and by layer.

    python -m bench.profile_step                               # CIFARNet/4 width, T=10
    python -m bench.profile_step --network=cifarnet --time_steps=10 --steps=2

Appends a ``bench.records`` record (``bench/results/records.jsonl``; it also holds the time
by layer and category and the 40 slowest ops) and prints the share of each category
(``bench.tables_perf.profile_table``, the categories' own names). Self times are host wall-clock intervals of op
execution, so on a loaded machine they include time the op's thread waited for a core;
compare shares, not absolute numbers.
"""

from __future__ import annotations

import collections
import glob
import json
import re
import tempfile
import time

from bench import _common
from bench._common import flags, keras
from bench.tables_perf import profile_table

FLAGS = flags.FLAGS
flags.DEFINE_string("network", "cifarnet_w4", "cifarnet or cifarnet_wK.")
flags.DEFINE_integer("time_steps", 10, "T.")
flags.DEFINE_string("mode", "tandem", "Mode to profile.")
flags.DEFINE_string("policy", "float32", "Keras dtype policy.")
flags.DEFINE_bool("jit", False, "jit_compile.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("steps", 2, "Profiled steps.")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")
_common.check_network_flag("network")

CATEGORIES = (  # (substring of the op name, category), first match wins
    ("coupled_ann_backward", "backward: coupled ANN convs/matmuls (input + weight grads)"),
    ("coupling_backward", "backward: coupling (rate gradient, bounded ReLU mask)"),
    ("gradient_tape", "backward: other autodiff (BN, encoder, readout)"),
    ("per_step_products", "forward: conv over T (per-step W*s(t))"),
    ("integrate_and_fire", "forward: IF recurrence"),
    ("batch_norm_fold", "forward: BN statistics, folding, SNN current"),
    ("time_sums", "forward: time sums (counts, summed products)"),
    ("adam", "optimizer (Adam)"),
)
LAYER = re.compile(r"(tandem_conv\d+|tandem_dense\d+|encoder_conv|encoder_bn|encoder|logits|normalize|dropout)")


def categorize(name: str, op_type: str) -> str:
    """The category of one op from its name scope (see ``CATEGORIES``)."""
    if op_type == "IDLE":
        return "idle"
    lower = name.lower()
    for key, category in CATEGORIES:
        if key in lower:
            return category
    layer = LAYER.search(name)
    if layer and layer.group(1) in ("encoder_conv", "encoder_bn", "normalize", "logits", "dropout"):
        return "forward: ANN layers (normalize, encoder conv+BN, readout)"
    if layer and layer.group(1) == "encoder":
        return "forward: spike encoder"
    if layer:
        return "forward: other ops in tandem layers (casts, reshapes, coupling)"
    return "other (loss, metrics, step bookkeeping)"


def op_table(logdir: str) -> list:
    """Rows ``(type, name, self_time_us)`` of the profiler's framework_op_stats."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    data, ok = plugin.xspace_to_tools_data([path], "framework_op_stats")
    if not ok:
        raise RuntimeError("the profiler could not convert the trace")
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    cols = [c["id"] for c in table["cols"]]
    rows = []
    for r in table["rows"]:
        values = [c.get("v") if c else None for c in r["c"]]
        rows.append((values[cols.index("type")], values[cols.index("operation")],
                     float(values[cols.index("total_self_time")])))
    return rows


def main(argv) -> None:
    del argv
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(FLAGS.policy)
    images, labels = _common.synthetic_batch(FLAGS.batch)
    model = _common.compiled_network(FLAGS.network, FLAGS.time_steps, FLAGS.mode, FLAGS.jit)
    for _ in range(2):
        model.train_on_batch(images, labels)
    with tempfile.TemporaryDirectory() as logdir:
        start = time.perf_counter()
        tf.profiler.experimental.start(logdir)
        for _ in range(FLAGS.steps):
            model.train_on_batch(images, labels)
        tf.profiler.experimental.stop()
        wall = (time.perf_counter() - start) / FLAGS.steps
        ops = op_table(logdir)
    by_category, by_layer = collections.Counter(), collections.Counter()
    for op_type, name, self_us in ops:
        category = categorize(name, op_type)
        by_category[category] += self_us / FLAGS.steps
        layer = LAYER.search(name)
        if category != "idle":
            by_layer[f"{layer.group(1) if layer else '-'} | {category}"] += self_us / FLAGS.steps
    print(f"{FLAGS.network}, T={FLAGS.time_steps}, {FLAGS.mode}, {FLAGS.policy}, jit={FLAGS.jit}, batch "
          f"{FLAGS.batch}: {wall:.3f} s per step (profiled)")
    _common.finish("profile_step", {"wall_s_per_step": wall, "by_category_us": dict(by_category),
                                    "by_layer_us": dict(by_layer), "top_ops": sorted(ops, key=lambda r: -r[2])[:40]},
                   lambda r: profile_table(r, labels={}), FLAGS.out)


if __name__ == "__main__":
    _common.run(main)
