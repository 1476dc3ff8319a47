"""Training steps of the modes of one architecture, side by side: speed, memory, profile.

    python -m bench.train_step                       # CIFARNet/4, T 1,4,10,16, float32 and bf16
    python -m bench.train_step --networks=cifarnet --time_steps=10 --policies=float32 --modes=tandem,ann
    python -m bench.train_step --measure=memory --modes=tandem,bptt --time_steps=1,4,10,16,32 --policies=float32
    python -m bench.train_step --measure=profile --networks=cifarnet --modes=tandem --time_steps=10 --repeats=2

``speed`` (record ``train_step``): for every network, policy, ``jit`` and T the modes are built,
warmed up (2 steps) and their steps timed round-robin, so that the shared machine's load drift
hits all alike: img/s, wall and CPU s per step (medians), the ratios to the ANN and the compute
bounds of ``bench.harness.compute_bounds``. ``memory`` (record ``memory``): every (mode, T) in a
fresh process with ``TF_CPU_ALLOCATOR_USE_BFC=true``, so that TensorFlow's CPU allocator counts
its bytes: the resident set before the first step, its peak (``ru_maxrss``) and the allocator's
peak during one step. ``profile`` (record ``profile_step``): the ops' self
time over ``--repeats`` steps of the first mode (TensorFlow's profiler, ``framework_op_stats``)
by category, from the name scopes the core sets, and by layer; host wall-clock intervals, which
on a loaded machine include waiting for a core: compare shares, not times. Each appends a
record and prints its table.
"""
from __future__ import annotations

import collections
import gc
import glob
import itertools
import json
import os
import re
import resource
import tempfile
import time

from bench import harness
from bench.harness import flags, keras
from bench.tables import memory_table, profile_table, train_step_table

FLAGS = flags.FLAGS
flags.DEFINE_enum("measure", "speed", ["speed", "memory", "profile"], "What to measure (see the docstring).")
flags.DEFINE_list("networks", ["cifarnet_w4"],
                  "CIFAR builders of models.BUILDERS, each optionally _wK (width / K).")
flags.DEFINE_list("modes", ["tandem", "ann", "bptt"], "Modes measured side by side.")
flags.DEFINE_list("time_steps", ["1", "4", "10", "16"], "Values of T.")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies.")
flags.DEFINE_list("jit", ["0"], "jit_compile settings (0/1).")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("repeats", 3, "Timed steps per mode (after 2 warm-up steps).")
flags.DEFINE_string("child", "", "Internal: measure one configuration in this process (JSON).")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")
harness.check_network_flag("networks")


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_group(network: str, policy: str, jit: bool, time_steps: int, modes, images, labels,
               repeats: int) -> tuple[list, dict]:
    """Builds ``modes`` of one configuration, warms them up and times them round-robin;
    returns the rows and this process's memory around the steps (and the allocator's, with
    ``TF_CPU_ALLOCATOR_USE_BFC=true``)."""
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(policy)
    steps, macs, errors = {}, None, {}
    for mode in modes:
        try:
            model = harness.compiled_network(network, time_steps, mode, jit)
            macs = macs or harness.layer_macs(model)
            steps[mode] = (lambda m=model: m.train_on_batch(images, labels))
        except Exception as error:  # noqa: BLE001 -- record and go on (e.g. XLA refusing an op)
            errors[mode] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    bfc = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "").lower() == "true"
    memory = {"rss_before_step_mib": _rss_mib(), "peak_before_step_mib": _peak_mib()}
    for step in steps.values():
        step()
    memory["peak_after_first_step_mib"] = _peak_mib()
    if bfc:
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    for step in steps.values():
        step()
    if bfc:
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
        memory.update(allocator_before_step_mib=before / 2**20, allocator_step_peak_mib=peak / 2**20,
                      allocator_step_peak_above_before_mib=(peak - before) / 2**20)
    times, cpu = harness.interleaved_timing(steps, repeats)
    memory.update(peak_mib=_peak_mib(), step_peak_above_before_mib=_peak_mib() - memory["rss_before_step_mib"])
    keras.mixed_precision.set_global_policy("float32")
    bounds = harness.compute_bounds(macs, time_steps) if macs else {}
    median = {mode: (harness.median(times[mode]), harness.median(cpu[mode])) for mode in times}
    rows = []
    for mode in modes:
        row = {"network": network, "policy": policy, "jit": jit, "T": time_steps, "mode": mode,
               "batch": len(labels), **bounds}
        if mode in errors:
            row["error"] = errors[mode]
        else:
            (wall, cpu_s), ann = median[mode], median.get("ann")
            row.update(step_s=times[mode], median_s=wall, images_per_s=len(labels) / wall,
                       ratio_to_ann=ann and wall / ann[0], cpu_s=cpu[mode], median_cpu_s=cpu_s,
                       cpu_ratio_to_ann=ann and cpu_s / ann[1])
        rows.append(row)
    del steps
    gc.collect()
    return rows, memory


def _child(configuration: dict) -> None:
    images, labels = harness.synthetic_batch(configuration.pop("batch"))
    rows, memory = time_group(images=images, labels=labels, **configuration)
    print(json.dumps({"rows": rows, "memory": memory}))


CATEGORIES = (  # (name scope in the op's name, category), first match wins
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
ANALOG = ("encoder_conv", "encoder_bn", "normalize", "logits", "dropout")


def categorize(name: str, op_type: str) -> str:
    """The category of one op from its name scope (:data:`CATEGORIES`), else its layer."""
    if op_type == "IDLE":
        return "idle"
    category = next((c for key, c in CATEGORIES if key in name.lower()), None)
    layer = LAYER.search(name)
    if category or not layer:
        return category or "other (loss, metrics, step bookkeeping)"
    if layer.group(1) in ANALOG:
        return "forward: ANN layers (normalize, encoder conv+BN, readout)"
    return "forward: spike encoder" if layer.group(1) == "encoder" else \
        "forward: other ops in tandem layers (casts, reshapes, coupling)"


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
    values = [[c.get("v") if c else None for c in r["c"]] for r in table["rows"]]
    return [(v[cols.index("type")], v[cols.index("operation")], float(v[cols.index("total_self_time")]))
            for v in values]


def profile(network: str, policy: str, jit: bool, time_steps: int, mode: str, steps: int, batch: int) -> dict:
    """The ``profile_step`` figures of ``steps`` training steps (after two warm-up steps)."""
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(policy)
    images, labels = harness.synthetic_batch(batch)
    model = harness.compiled_network(network, time_steps, mode, jit)
    for _ in range(2):
        model.train_on_batch(images, labels)
    with tempfile.TemporaryDirectory() as logdir:
        start = time.perf_counter()
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            model.train_on_batch(images, labels)
        tf.profiler.experimental.stop()
        wall, ops = (time.perf_counter() - start) / steps, op_table(logdir)
    by_category, by_layer = collections.Counter(), collections.Counter()
    for op_type, name, self_us in ops:
        category, layer = categorize(name, op_type), LAYER.search(name)
        by_category[category] += self_us / steps
        if category != "idle":
            by_layer[f"{layer.group(1) if layer else '-'} | {category}"] += self_us / steps
    print(f"{network}, T={time_steps}, {mode}: {wall:.3f} s per step (profiled)")
    return {"wall_s_per_step": wall, "by_category_us": dict(by_category), "by_layer_us": dict(by_layer),
            "top_ops": sorted(ops, key=lambda r: -r[2])[:40]}


def main(argv) -> None:
    del argv
    if FLAGS.child:
        return _child(json.loads(FLAGS.child))
    images, labels = harness.synthetic_batch(FLAGS.batch)
    rows = []
    for network, policy, jit, time_steps in itertools.product(
            FLAGS.networks, FLAGS.policies, [j == "1" for j in FLAGS.jit], map(int, FLAGS.time_steps)):
        group = dict(network=network, policy=policy, jit=jit, time_steps=time_steps)
        if FLAGS.measure == "profile":
            figures = profile(**group, mode=FLAGS.modes[0], steps=FLAGS.repeats, batch=FLAGS.batch)
            harness.finish("profile_step", figures, profile_table, FLAGS.out)
        elif FLAGS.measure == "memory":
            for mode in FLAGS.modes:
                child = dict(group, modes=[mode], repeats=FLAGS.repeats, batch=FLAGS.batch)
                result = harness.run_child("bench.train_step", [f"--child={json.dumps(child)}"],
                                           TF_CPU_ALLOCATOR_USE_BFC="true")
                rows.append({**result["rows"][0], **result["memory"]})
                print(f"{mode} T={time_steps}: peak RSS {rows[-1]['peak_mib']:.0f} MiB", flush=True)
        else:
            timed = time_group(**group, modes=FLAGS.modes, images=images, labels=labels,
                               repeats=FLAGS.repeats)[0]
            print(f"{network} {policy} jit={int(jit)} T={time_steps}: " + ", ".join(
                f"{r['mode']} failed" if "error" in r else f"{r['mode']} {r['images_per_s']:.1f} img/s"
                for r in timed), flush=True)
            rows += timed
    if FLAGS.measure in ("speed", "memory"):
        harness.finish("train_step" if FLAGS.measure == "speed" else "memory", {"rows": rows},
                       train_step_table if FLAGS.measure == "speed" else memory_table, FLAGS.out)


if __name__ == "__main__":
    harness.run(main)
