"""Benchmark 1: training-step speed, tandem vs ANN vs BPTT, side by side.

For every network, dtype policy, ``jit_compile`` setting and T, the three modes of the
same architecture are built and warmed up, then their training steps are timed
round-robin (so the shared machine's load drift hits all three alike). Reported:
images/s (median), the tandem/ANN and BPTT/ANN time ratios, and the compute bounds of
``bench._common.compute_bounds`` from the layers' MACs.

    python -m bench.train_step                       # quick: CIFARNet/4 width, all T, both dtypes, no XLA
    python -m bench.train_step --full                # + full CIFARNet, + jit_compile=True (hours here)
    python -m bench.train_step --networks=cifarnet --time_steps=10 --policies=float32 --jit=0

Appends a ``bench.records`` record (``bench/results/records.jsonl``) and prints its table
(``bench.tables_perf.train_step_table``); one line of images/s per configuration as it is
measured.
"""
from __future__ import annotations

import gc

from bench import _common
from bench._common import flags, keras
from bench.tables_perf import train_step_table

FLAGS = flags.FLAGS
flags.DEFINE_list("networks", ["cifarnet_w4"], "CIFAR builders of models.BUILDERS (cifarnet, "
                  "resnet20, vgg11, ...), each optionally _wK (width / K).")
flags.DEFINE_list("modes", ["tandem", "ann", "bptt"], "Modes timed side by side.")
flags.DEFINE_list("time_steps", ["1", "4", "10", "16"], "Values of T.")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies.")
flags.DEFINE_list("jit", ["0"], "jit_compile settings (0/1).")
flags.DEFINE_bool("full", False, "Every configuration: networks cifarnet_w4,cifarnet and jit 0,1.")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("repeats", 3, "Timed steps per mode (after 2 warm-up steps).")
flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")
_common.check_network_flag("networks")


def time_group(network: str, policy: str, jit: bool, time_steps: int, modes, batch: int,
               repeats: int, images, labels) -> list:
    """Builds the modes of one configuration, warms them up and times them round-robin."""
    keras.mixed_precision.set_global_policy(policy)
    steps, macs, errors = {}, None, {}
    for mode in modes:
        try:
            model = _common.compiled_network(network, time_steps, mode, jit)
            macs = macs or _common.layer_macs(model)
            for _ in range(2):
                model.train_on_batch(images, labels)
            steps[mode] = (lambda m=model: m.train_on_batch(images, labels))
        except Exception as error:  # noqa: BLE001 -- record and go on (e.g. XLA refusing an op)
            errors[mode] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    times, cpu = _common.interleaved_timing(steps, repeats)
    keras.mixed_precision.set_global_policy("float32")
    bounds = _common.compute_bounds(macs, time_steps) if macs else {}
    median = {mode: (_common.median(times[mode]), _common.median(cpu[mode])) for mode in times}
    rows = []
    for mode in modes:
        row = {"network": network, "policy": policy, "jit": jit, "T": time_steps, "mode": mode,
               "batch": batch, **bounds}
        if mode in errors:
            row["error"] = errors[mode]
        else:
            (wall, cpu_s), ann = median[mode], median.get("ann")
            row.update(step_s=times[mode], median_s=wall, images_per_s=batch / wall,
                       ratio_to_ann=ann and wall / ann[0], cpu_s=cpu[mode], median_cpu_s=cpu_s,
                       cpu_ratio_to_ann=ann and cpu_s / ann[1])
        rows.append(row)
    del steps
    gc.collect()
    return rows


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
                    group = time_group(network, policy, jit == "1", int(time_steps), FLAGS.modes,
                                       FLAGS.batch, FLAGS.repeats, images, labels)
                    print(f"{network} {policy} jit={jit} T={time_steps}: " + ", ".join(
                        f"{r['mode']} {r['images_per_s']:.1f} img/s" if "error" not in r else
                        f"{r['mode']} failed" for r in group), flush=True)
                    rows += group
    _common.finish("train_step", {"rows": rows}, train_step_table, FLAGS.out)


if __name__ == "__main__":
    _common.run(main)
