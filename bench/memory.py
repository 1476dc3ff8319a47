"""Benchmark 2: peak memory of one training step against T, tandem vs BPTT.

Every (mode, T) runs in a fresh Python process, which builds and compiles the model,
reads its resident set size (RSS) just before the first step, runs ``--steps`` training
steps and reports the peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``, the kernel's
high-water mark of resident pages) and the peak above the pre-step RSS, which is the
memory the steps needed (activations kept for the backward pass, gradients, workspace,
plus the graph built by the first step's tracing, the same for every T).
``tf.config.experimental.get_memory_info("CPU:0")`` reports ``{'current': 0, 'peak': 0}``
on this TensorFlow CPU build (no tracking allocator), so it is not used.

    python -m bench.memory                                      # CIFARNet/4 width, T 1..32, tandem vs bptt
    python -m bench.memory --network=cifarnet --time_steps=1,4,10,16

Appends a ``bench.records`` record (``bench/results/records.jsonl``) and prints a Markdown table.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from bench import _common

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


# With TF_CPU_ALLOCATOR_USE_BFC=true (set by the parent for every child) TensorFlow's CPU
# allocator counts its bytes, and get_memory_info("CPU:0") gives the exact peak of the
# tensors of one step (without it, it reports zeros).
_BFC = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "").lower() == "true"


def measure_child() -> dict:
    """Builds one model in this process and measures its training steps' peak RSS."""
    import keras

    keras.mixed_precision.set_global_policy(FLAGS.policy)
    images, labels = _common.synthetic_batch(FLAGS.batch)
    model = _common.compile_for_training(_common.build_network(FLAGS.network, FLAGS.T, FLAGS.mode),
                                         FLAGS.jit)
    import tensorflow as tf

    before = _common.current_rss_mib()
    peak_before = _common.peak_rss_mib()
    model.train_on_batch(images, labels)
    peak_first = _common.peak_rss_mib()
    allocator = {}
    for _ in range(FLAGS.steps - 1):
        if _BFC:
            tf.config.experimental.reset_memory_stats("CPU:0")
            allocator_before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        model.train_on_batch(images, labels)
        if _BFC:
            info = tf.config.experimental.get_memory_info("CPU:0")
            allocator = {"allocator_before_step_mib": allocator_before / 2**20,
                         "allocator_step_peak_mib": info["peak"] / 2**20,
                         "allocator_step_peak_above_before_mib": (info["peak"] - allocator_before) / 2**20}
    peak = _common.peak_rss_mib()
    return {"network": FLAGS.network, "mode": FLAGS.mode, "T": FLAGS.T, "policy": FLAGS.policy,
            "batch": FLAGS.batch, "jit": FLAGS.jit, "rss_before_step_mib": before,
            "peak_before_step_mib": peak_before, "peak_after_first_step_mib": peak_first,
            "peak_mib": peak, "step_peak_above_before_mib": peak - before, **allocator}


def markdown(rows) -> str:
    """Table of peak RSS per (mode, T) and the growth from the smallest T."""
    lines = ["| network | mode | T | peak RSS MiB | RSS: step peak above pre-step MiB | RSS growth from first T MiB "
             "| allocator: step peak above pre-step MiB | allocator growth from first T MiB |",
             "|---|---|---|---|---|---|---|---|"]
    first, first_alloc = {}, {}
    for r in rows:
        first.setdefault(r["mode"], r["step_peak_above_before_mib"])
        alloc = r.get("allocator_step_peak_above_before_mib", float("nan"))
        first_alloc.setdefault(r["mode"], alloc)
        lines.append(f"| {r['network']} | {r['mode']} | {r['T']} | {r['peak_mib']:.0f} | "
                     f"{r['step_peak_above_before_mib']:.0f} | "
                     f"{r['step_peak_above_before_mib'] - first[r['mode']]:.0f} | {alloc:.0f} | "
                     f"{alloc - first_alloc[r['mode']]:.0f} |")
    return "\n".join(lines)


def main(argv) -> None:
    del argv
    if FLAGS.child:
        print(json.dumps(measure_child()), flush=True)
        return
    rows = []
    for mode in FLAGS.modes:
        for time_steps in FLAGS.time_steps:
            args = ["--child", f"--network={FLAGS.network}", f"--mode={mode}", f"--T={time_steps}",
                    f"--policy={FLAGS.policy}", f"--batch={FLAGS.batch}", f"--steps={FLAGS.steps}",
                    f"--jit={FLAGS.jit}"]
            rows.append(_common.run_subprocess("bench.memory", args,
                                               env={"TF_CPU_ALLOCATOR_USE_BFC": "true"}))
            print(markdown(rows).splitlines()[-1], flush=True)
    summary = {}
    for key, label in (("step_peak_above_before_mib", "rss"),
                       ("allocator_step_peak_above_before_mib", "allocator")):
        for mode in FLAGS.modes:
            mine = [r for r in rows if r["mode"] == mode and key in r]
            if mine:
                summary[f"{label}_{mode}"] = mine[-1][key] - mine[0][key]
        if summary.get(f"{label}_bptt"):
            summary[f"{label}_tandem_growth_over_bptt_growth"] = (
                summary.get(f"{label}_tandem", float("nan")) / summary[f"{label}_bptt"])
    print(markdown(rows))
    print("growth first->last T (MiB):", json.dumps(summary))
    _common.write_record("memory", {"rows": rows, "growth": summary}, FLAGS.out)


if __name__ == "__main__":
    app.run(main)
