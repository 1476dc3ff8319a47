"""Benchmark 1: training-step speed, tandem vs ANN vs BPTT, side by side.

For every network, dtype policy, ``jit_compile`` setting and T, the three modes of the
same architecture are built and warmed up, then their training steps are timed
round-robin (so the shared machine's load drift hits all three alike). Reported:
images/s (median), the tandem/ANN and BPTT/ANN time ratios, and the compute bounds of
``bench._common.compute_bounds`` from the layers' MACs.

    python -m bench.train_step                       # quick: CIFARNet/4 width, all T, both dtypes, no XLA
    python -m bench.train_step --full                # + full CIFARNet, + jit_compile=True (hours here)
    python -m bench.train_step --networks=cifarnet --time_steps=10 --policies=float32 --jit=0

Appends a ``bench.records`` record (``bench/results/records.jsonl``) and prints a Markdown table.
"""

from __future__ import annotations

import gc

from absl import app, flags

from bench import _common

FLAGS = flags.FLAGS
flags.DEFINE_list("networks", ["cifarnet_w4"], "cifarnet and/or cifarnet_wK (width / K).")
flags.DEFINE_list("modes", ["tandem", "ann", "bptt"], "Modes timed side by side.")
flags.DEFINE_list("time_steps", ["1", "4", "10", "16"], "Values of T.")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies.")
flags.DEFINE_list("jit", ["0"], "jit_compile settings (0/1).")
flags.DEFINE_bool("full", False, "Every configuration: networks cifarnet_w4,cifarnet and jit 0,1.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("repeats", 3, "Timed steps per mode (after 2 warm-up steps).")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")


def time_group(network: str, policy: str, jit: bool, time_steps: int, modes, batch: int,
               repeats: int, images, labels) -> list:
    """Builds the modes of one configuration, warms them up and times them round-robin."""
    import keras

    keras.mixed_precision.set_global_policy(policy)
    steps, macs, errors = {}, None, {}
    for mode in modes:
        try:
            model = _common.compile_for_training(
                _common.build_network(network, time_steps, mode), jit)
            if macs is None:
                macs = _common.layer_macs(model)
            for _ in range(2):
                model.train_on_batch(images, labels)
            steps[mode] = (lambda m=model: m.train_on_batch(images, labels))
        except Exception as error:  # noqa: BLE001 -- record and go on (e.g. XLA refusing an op)
            errors[mode] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    cpu = {}
    times = _common.interleaved_timing(steps, repeats, cpu)
    keras.mixed_precision.set_global_policy("float32")
    bounds = _common.compute_bounds(macs, time_steps) if macs else {}
    ann_median = _common.median(times["ann"]) if "ann" in times else None
    rows = []
    for mode in modes:
        row = {"network": network, "policy": policy, "jit": jit, "T": time_steps, "mode": mode,
               "batch": batch, **bounds}
        if mode in errors:
            row["error"] = errors[mode]
        else:
            median = _common.median(times[mode])
            row.update(step_s=times[mode], median_s=median, images_per_s=batch / median,
                       ratio_to_ann=median / ann_median if ann_median else None,
                       cpu_s=cpu[mode], median_cpu_s=_common.median(cpu[mode]),
                       cpu_ratio_to_ann=(_common.median(cpu[mode]) / _common.median(cpu["ann"])
                                         if "ann" in cpu else None))
        rows.append(row)
    del steps
    gc.collect()
    return rows


def markdown(rows) -> str:
    """The result table, one line per configuration and mode."""
    lines = ["| network | policy | jit | T | mode | img/s | step s (median) | time / ANN | "
             "CPU s / ANN | bound (issue) | bound (shared conv) | bound BPTT |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['network']} | {r['policy']} | {int(r['jit'])} | {r['T']} | {r['mode']} | "
                         f"error: {r['error']} | | | | | | |")
            continue
        ratio = f"{r['ratio_to_ann']:.2f}" if r.get("ratio_to_ann") else ""
        cpu_ratio = f"{r['cpu_ratio_to_ann']:.2f}" if r.get("cpu_ratio_to_ann") else ""
        lines.append(
            f"| {r['network']} | {r['policy']} | {int(r['jit'])} | {r['T']} | {r['mode']} | "
            f"{r['images_per_s']:.1f} | {r['median_s']:.3f} | {ratio} | {cpu_ratio} | {r['bound_issue']:.2f} | "
            f"{r['bound_shared']:.2f} | {r['bound_bptt']:.2f} |")
    return "\n".join(lines)


def main(argv) -> None:
    del argv
    if FLAGS.full:
        FLAGS.networks, FLAGS.jit = ["cifarnet_w4", "cifarnet"], ["0", "1"]
    images, labels = _common.synthetic_batch(FLAGS.batch)
    rows = []
    for network in FLAGS.networks:
        for policy in FLAGS.policies:
            for jit in FLAGS.jit:
                for time_steps in FLAGS.time_steps:
                    rows += time_group(network, policy, jit == "1", int(time_steps), FLAGS.modes,
                                       FLAGS.batch, FLAGS.repeats, images, labels)
                    print(markdown(rows[-len(FLAGS.modes):]).splitlines()[-len(FLAGS.modes):],
                          flush=True)
    table = markdown(rows)
    print(table)
    _common.write_record("train_step", {"rows": rows}, FLAGS.out)


if __name__ == "__main__":
    app.run(main)
