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

Writes ``bench/results/memory_<UTC time>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import json
import time

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
flags.DEFINE_string("out", "", "JSON path (default bench/results/memory_<time>.json).")


def measure_child() -> dict:
    """Builds one model in this process and measures its training steps' peak RSS."""
    import keras

    keras.mixed_precision.set_global_policy(FLAGS.policy)
    images, labels = _common.synthetic_batch(FLAGS.batch)
    model = _common.compile_for_training(_common.build_network(FLAGS.network, FLAGS.T, FLAGS.mode),
                                         FLAGS.jit)
    before = _common.current_rss_mib()
    peak_before = _common.peak_rss_mib()
    model.train_on_batch(images, labels)
    peak_first = _common.peak_rss_mib()
    for _ in range(FLAGS.steps - 1):
        model.train_on_batch(images, labels)
    peak = _common.peak_rss_mib()
    return {"network": FLAGS.network, "mode": FLAGS.mode, "T": FLAGS.T, "policy": FLAGS.policy,
            "batch": FLAGS.batch, "jit": FLAGS.jit, "rss_before_step_mib": before,
            "peak_before_step_mib": peak_before, "peak_after_first_step_mib": peak_first,
            "peak_mib": peak, "step_peak_above_before_mib": peak - before}


def markdown(rows) -> str:
    """Table of peak RSS per (mode, T) and the growth from the smallest T."""
    lines = ["| network | mode | T | peak RSS MiB | step peak above pre-step RSS MiB | growth from first T MiB |",
             "|---|---|---|---|---|---|"]
    first = {}
    for r in rows:
        first.setdefault(r["mode"], r["step_peak_above_before_mib"])
        lines.append(f"| {r['network']} | {r['mode']} | {r['T']} | {r['peak_mib']:.0f} | "
                     f"{r['step_peak_above_before_mib']:.0f} | "
                     f"{r['step_peak_above_before_mib'] - first[r['mode']]:.0f} |")
    return "\n".join(lines)


def main(argv) -> None:
    del argv
    if FLAGS.child:
        print(json.dumps(measure_child()), flush=True)
        return
    rows = []
    for mode in FLAGS.modes:
        for time_steps in FLAGS.time_steps:
            args = [f"--child", f"--network={FLAGS.network}", f"--mode={mode}", f"--T={time_steps}",
                    f"--policy={FLAGS.policy}", f"--batch={FLAGS.batch}", f"--steps={FLAGS.steps}",
                    f"--jit={FLAGS.jit}"]
            rows.append(_common.run_subprocess("bench.memory", args))
            print(markdown(rows).splitlines()[-1], flush=True)
    summary = {}
    for mode in FLAGS.modes:
        mine = [r for r in rows if r["mode"] == mode]
        summary[mode] = mine[-1]["step_peak_above_before_mib"] - mine[0]["step_peak_above_before_mib"]
    if "tandem" in summary and "bptt" in summary and summary["bptt"] > 0:
        summary["tandem_growth_over_bptt_growth"] = summary["tandem"] / summary["bptt"]
    print(markdown(rows))
    print("growth first->last T (MiB):", json.dumps(summary))
    out = FLAGS.out or f"bench/results/memory_{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    _common.write_json(out, {"machine": _common.machine(), "rows": rows, "growth": summary})
    print(f"wrote {out}")


if __name__ == "__main__":
    app.run(main)
