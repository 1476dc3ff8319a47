"""Benchmark: TensorFlow's oneDNN kernels on or off (``TF_ENABLE_ONEDNN_OPTS``), side by side.

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported, and turns oneDNN on
by default only on some CPUs (those with AVX-512 VNNI or newer); on others, such as an AMD
EPYC without AVX-512, convolutions run through Eigen unless the variable is ``1``. One
setting per process, so every measurement is a fresh Python process: rounds of one process
per setting, the order alternating from round to round so that a drift of the shared
machine's load hits both alike. Each process builds every mode, warms up with 2 training
steps and times ``--steps`` more, round-robin (``train_on_batch`` on one synthetic batch);
it also saves the logits of the untrained model (same seed) on a fixed batch, so that the
two settings' outputs are compared (the argmax agreement and the largest difference).

    python -m bench.onednn                                   # CIFARNet/4, T=4, tandem and ann
    python -m bench.onednn --network=cifarnet --time_steps=10 --rounds=3

Appends a ``bench.records`` record and prints its table (``bench.tables_perf.onednn_table``):
per mode, the median wall and CPU s per step of each setting and their ratios (off / on).
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from bench import _common
from bench._common import flags, keras
from bench.tables_perf import onednn_table

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The program's flags (defined when it runs, so that tests can import this module
    beside other benchmarks that define flags of the same names)."""
    flags.DEFINE_string("network", "cifarnet_w4", "A CIFAR builder of models.BUILDERS, optionally _wK.")
    flags.DEFINE_list("modes", ["tandem", "ann"], "Modes timed in every process.")
    flags.DEFINE_integer("time_steps", 4, "T.")
    flags.DEFINE_string("policy", "float32", "Keras dtype policy.")
    flags.DEFINE_integer("batch", 32, "Batch size.")
    flags.DEFINE_integer("steps", 5, "Timed steps per mode and process (after 2 warm-up steps).")
    flags.DEFINE_integer("rounds", 4, "Processes per setting.")
    flags.DEFINE_bool("child", False, "Internal: measure in this process (the parent sets the variable).")
    flags.DEFINE_string("logits_to", "", "Internal (with --child): save the logits here (.npz).")
    flags.DEFINE_string("out", "", "Records file to append to (default bench/results/records.jsonl).")
    _common.check_network_flag("network")


SETTINGS = ("0", "1")


def measure_child() -> dict:
    """Times every mode's training steps in this process; saves the untrained logits."""
    keras.mixed_precision.set_global_policy(FLAGS.policy)
    images, labels = _common.synthetic_batch(FLAGS.batch)
    models, logits = {}, {}
    for mode in FLAGS.modes:
        keras.utils.set_random_seed(0)
        models[mode] = _common.compiled_network(FLAGS.network, FLAGS.time_steps, mode)
        logits[mode] = np.asarray(models[mode].predict_on_batch(images), dtype=np.float32)
        for _ in range(2):
            models[mode].train_on_batch(images, labels)
    wall, cpu = _common.interleaved_timing(
        {mode: (lambda m=models[mode]: m.train_on_batch(images, labels)) for mode in FLAGS.modes}, FLAGS.steps)
    if FLAGS.logits_to:
        np.savez(FLAGS.logits_to, **logits)
    return {"setting": os.environ.get("TF_ENABLE_ONEDNN_OPTS", ""),
            "median_s": {m: float(np.median(wall[m])) for m in FLAGS.modes},
            "median_cpu_s": {m: float(np.median(cpu[m])) for m in FLAGS.modes}}


def measure(setting: str, logits_to: str) -> dict:
    """:func:`measure_child` in a fresh process with ``TF_ENABLE_ONEDNN_OPTS=setting``."""
    return _common.run_child("bench.onednn", [
        "--child", f"--network={FLAGS.network}", f"--modes={','.join(FLAGS.modes)}", f"--time_steps={FLAGS.time_steps}",
        f"--policy={FLAGS.policy}", f"--batch={FLAGS.batch}", f"--steps={FLAGS.steps}", f"--logits_to={logits_to}"],
        TF_ENABLE_ONEDNN_OPTS=setting)


def summarize(runs: list[dict], logits: dict, modes: list[str], **config) -> dict:
    """Per mode: each setting's median over its processes' medians, the off / on ratios,
    and how far the two settings' logits are apart (``config``: fields of every row)."""
    rows = []
    for mode in modes:
        row = {"mode": mode, **config}
        for setting in SETTINGS:
            mine = [r for r in runs if r["setting"] == setting]
            row[f"median_s_{setting}"] = float(np.median([r["median_s"][mode] for r in mine]))
            row[f"median_cpu_s_{setting}"] = float(np.median([r["median_cpu_s"][mode] for r in mine]))
        row["off_over_on"] = row["median_s_0"] / row["median_s_1"]
        row["cpu_off_over_on"] = row["median_cpu_s_0"] / row["median_cpu_s_1"]
        off, on = logits["0"][mode], logits["1"][mode]
        row["logits_max_abs_diff"] = float(np.max(np.abs(off - on)))
        row["argmax_agreement"] = float(np.mean(off.argmax(-1) == on.argmax(-1)))
        rows.append(row)
    return {"rows": rows, "runs": runs}


def main(argv) -> None:
    del argv
    if FLAGS.child:
        print(json.dumps(measure_child()), flush=True)
        return
    runs, logits = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(FLAGS.rounds):
            for setting in (SETTINGS if i % 2 == 0 else SETTINGS[::-1]):
                path = os.path.join(tmp, f"logits_{setting}.npz")
                runs.append({"round": i, **measure(setting, path)})
                if setting not in logits:
                    with np.load(path) as saved:
                        logits[setting] = {k: saved[k] for k in saved.files}
                print(f"round {i}, TF_ENABLE_ONEDNN_OPTS={setting}: "
                      + ", ".join(f"{m} {runs[-1]['median_s'][m]:.3f} s/step" for m in FLAGS.modes), flush=True)
    figures = summarize(runs, logits, FLAGS.modes, network=FLAGS.network, T=FLAGS.time_steps,
                        policy=FLAGS.policy, batch=FLAGS.batch)
    _common.finish("onednn", figures, onednn_table, FLAGS.out)


if __name__ == "__main__":
    define_flags()
    _common.run(main)
