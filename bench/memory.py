"""Benchmark 2: peak memory of one training step against T, tandem vs BPTT.

Every (mode, T) runs in a fresh Python process, which builds and compiles the model,
reads its resident set size (RSS) just before the first step, runs ``--steps`` training
steps and reports the peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``, the kernel's
high-water mark of resident pages) and the peak above the pre-step RSS, which is the
memory the steps needed (activations kept for the backward pass, gradients, workspace,
plus the graph built by the first step's tracing, the same for every T). The parent sets
``TF_CPU_ALLOCATOR_USE_BFC=true`` for every child: TensorFlow's CPU allocator then counts
its bytes, and ``tf.config.experimental.get_memory_info("CPU:0")`` gives the exact peak of
the tensors of one step (without it, it reports zeros).

    python -m bench.memory                                      # CIFARNet/4 width, T 1..32, tandem vs bptt
    python -m bench.memory --network=cifarnet --time_steps=1,4,10,16

Appends a ``bench.records`` record (``bench/results/records.jsonl``) and prints its table
(``bench.tables_perf.memory_table``).
"""
from __future__ import annotations

import json
import os
import resource

from bench import _common
from bench._common import flags, keras
from bench.tables_perf import memory_table

FLAGS = flags.FLAGS
flags.DEFINE_string("network", "cifarnet_w4", "cifarnet or cifarnet_wK.")
flags.DEFINE_list("modes", ["tandem", "bptt"], "Modes to compare.")
flags.DEFINE_list("time_steps", ["1", "4", "10", "16", "32"], "Values of T.")
flags.DEFINE_string("policy", "float32", "Keras dtype policy.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("steps", 3, "Training steps per process.")
flags.DEFINE_bool("jit", False, "jit_compile.")
flags.DEFINE_bool("child", False, "Internal: measure one configuration in this process.")
flags.DEFINE_string("mode", "tandem", "Internal (with --child): the mode.")
flags.DEFINE_integer("T", 1, "Internal (with --child): T.")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")
_common.check_network_flag("network")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    """Current resident set size of this process, in MiB (from /proc/self/statm)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_child() -> dict:
    """Builds one model in this process and measures its training steps' peak RSS."""
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(FLAGS.policy)
    images, labels = _common.synthetic_batch(FLAGS.batch)
    model = _common.compiled_network(FLAGS.network, FLAGS.T, FLAGS.mode, FLAGS.jit)
    bfc = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "").lower() == "true"
    before, peak_before = current_rss_mib(), peak_rss_mib()
    model.train_on_batch(images, labels)
    peak_first = peak_rss_mib()
    allocator = {}
    for _ in range(FLAGS.steps - 1):
        if bfc:
            tf.config.experimental.reset_memory_stats("CPU:0")
            allocator_before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        model.train_on_batch(images, labels)
        if bfc:
            info = tf.config.experimental.get_memory_info("CPU:0")
            allocator = {"allocator_before_step_mib": allocator_before / 2**20,
                         "allocator_step_peak_mib": info["peak"] / 2**20,
                         "allocator_step_peak_above_before_mib": (info["peak"] - allocator_before) / 2**20}
    peak = peak_rss_mib()
    return {"network": FLAGS.network, "mode": FLAGS.mode, "T": FLAGS.T, "policy": FLAGS.policy,
            "batch": FLAGS.batch, "jit": FLAGS.jit, "rss_before_step_mib": before,
            "peak_before_step_mib": peak_before, "peak_after_first_step_mib": peak_first,
            "peak_mib": peak, "step_peak_above_before_mib": peak - before, **allocator}


def measure(mode: str, time_steps: str) -> dict:
    """:func:`measure_child` of one configuration in a fresh process (its last stdout line)."""
    return _common.run_child("bench.memory", [
        "--child", f"--network={FLAGS.network}", f"--mode={mode}", f"--T={time_steps}", f"--policy={FLAGS.policy}",
        f"--batch={FLAGS.batch}", f"--steps={FLAGS.steps}", f"--jit={FLAGS.jit}"], TF_CPU_ALLOCATOR_USE_BFC="true")


def main(argv) -> None:
    del argv
    if FLAGS.child:
        print(json.dumps(measure_child()), flush=True)
        return
    rows = []
    for mode in FLAGS.modes:
        for time_steps in FLAGS.time_steps:
            rows.append(measure(mode, time_steps))
            print(f"{mode} T={time_steps}: peak RSS {rows[-1]['peak_mib']:.0f} MiB", flush=True)
    _common.finish("memory", {"rows": rows}, memory_table, FLAGS.out)


if __name__ == "__main__":
    _common.run(main)
