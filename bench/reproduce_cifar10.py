"""Reproduces the tandem-learning paper's CIFAR-10 findings at a chosen budget.

    python -m bench.reproduce_cifar10 --budget=small --train_dir=/tmp/cifar/cifar10_jpeg/train

A thin driver: the budgets are named configurations (``bench.cifar10_budgets``), every
model is built, compiled and scheduled by ``train.recipe`` (the code ``python -m train``
runs), the analyses are ``tandem_keras.analysis`` / ``synops``, the figures
``tandem_keras.plots``, the verdicts ``bench.cifar10_findings``, and the result is a
``bench.records`` record (``--record_file``; ``python -m bench.tables`` puts it in the docs).

``--train_dir`` is a folder with one sub-folder of images per class, split 90/10 by
``common.datasets``; ``--test_dir`` (optional, same layout) adds a test error to every run.
Trained: ``ann`` (ReLU ANN), ``quantized_T{t}`` (Eq. 11; run as the SNN it is
constrain-then-train), ``tandem_T{t}`` (membrane decoding, every window of the sweep and
of the SynOps windows) and ``tandem_spike_T{T}`` (spike-count decoding, main window).
Findings: Fig. 8A, Sec. III-C / Fig. 7C, Fig. 8B, Table II, Fig. 9.

Outputs: ``--out_dir`` (``results.json``, ``results.md``, ``models/<run>.keras``, and
``export/tandem_T{T}`` / ``export/quantized_T{T}``: SavedModels of the main window for
``python -m eval --saved_model=... --split=validation``), PNG
figures in ``--figures_dir`` named ``cifar10_<budget>_<figure>.png``, and the record.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional, Sequence

from bench import _common  # first: TensorFlow's start-up lines held back
from bench import records
from bench.cifar10_budgets import BUDGETS, Config, load_data, make_config
from bench.cifar10_findings import assess, report
from bench.cifar10_runs import error_rate, fig9_summary, train_one
from absl import flags, logging
import numpy as np
import tandem_keras as tk
from tandem_keras import analysis, plots
from common import datasets
from train import export as train_export


def train_runs(config: Config, data: dict, x_analysis: np.ndarray) -> tuple[dict, dict]:
    """Trains every run of the budget (``train_one``) and saves each model; returns the
    models and their results by run name."""
    models, runs, t_main = {}, {}, config.time_steps

    def train(name, *args, **kwargs):
        models[name], runs[name] = train_one(config, data, *args, **kwargs)
        models[name].save(os.path.join(config.out_dir, "models", f"{name}.keras"))
        logging.info("%s: validation error %.4f, %.0f s", name, runs[name]["val_error"], runs[name]["train_seconds"])

    train("ann", "ann", t_main, curve=True)
    for t in sorted(set(config.sweep_time_steps) | {t_main}):
        train(f"quantized_T{t}", "quantized", t, curve=(t == t_main))
    train(f"tandem_T{t_main}", "tandem", t_main, curve=True, fig9_x=x_analysis)
    train(f"tandem_spike_T{t_main}", "tandem", t_main, decode="spike_count", curve=True)
    for t in sorted(set(config.sweep_time_steps) | set(config.synops_time_steps)):
        if t != t_main:
            train(f"tandem_T{t}", "tandem", t)
    return models, runs


def constrain_then_train(config: Config, data: dict, models: dict, runs: dict, x_analysis) -> dict:
    """Per window: the quantized ANN's weights run as the SNN (error, and the discrepancy
    between the two per layer, Fig. 7C)."""
    ctt, batch = {}, config.eval_batch_size
    for t in sorted(set(config.sweep_time_steps) | {config.time_steps}):
        quantized = models[f"quantized_T{t}"]
        snn = tk.with_mode(quantized, "tandem")
        ctt[t] = {"quantized_error": runs[f"quantized_T{t}"]["val_error"],
                  "ctt_error": error_rate(snn, data["x_val"], data["y_val"], batch),
                  "representation_error": analysis.representation_error(quantized, x_analysis, batch_size=batch)}
        if "x_test" in data:
            ctt[t]["ctt_test_error"] = error_rate(snn, data["x_test"], data["y_test"], batch)
    return ctt


def export_main_window(config: Config, data: dict, models: dict) -> dict:
    """The main window's tandem SNN and quantized ANN as SavedModels for ``python -m eval``
    (with the split they were trained on); returns their directories."""
    exports = {}
    for name in (f"tandem_T{config.time_steps}", f"quantized_T{config.time_steps}"):
        exports[name] = os.path.join(config.out_dir, "export", name)
        train_export.export(models[name], exports[name], source=data["source"], training={
            "validation_split": 0.1,
            "num_train": data["available"]["train"], "num_validation": data["available"]["validation"],
            "train_examples_used": len(data["y_train"]), "epochs": config.epochs, "seed": config.seed})
    return exports


def plot_figures(config: Config, runs: dict, ctt: dict, discrepancy: list, synops: dict, fig9_raw: dict) -> dict:
    """The paper's figures of the reproduction as PNGs in the figures folder; returns their paths."""
    prefix = os.path.join(config.figures_dir or os.path.join(config.out_dir, "figures"),
                          f"cifar10_{config.budget}_")
    t_main, sweep = config.time_steps, config.sweep_time_steps
    pct = lambda v: 100 * np.asarray(v)  # noqa: E731
    return {
        "fig8a": plots.plot_error_curves(
            {label: pct(runs[name]["val_error_per_epoch"]) for label, name in (
                ("ReLU ANN", "ann"), ("quantized ANN (Eq. 11)", f"quantized_T{t_main}"),
                ("tandem SNN, membrane decoding", f"tandem_T{t_main}"),
                ("tandem SNN, spike-count decoding", f"tandem_spike_T{t_main}"))},
            prefix + "fig8a_schemes.png"),
        "fig8b": plots.plot_error_curves(
            {"tandem SNN": {t: 100 * runs[f"tandem_T{t}"]["val_error"] for t in sweep},
             "quantized ANN": {t: 100 * ctt[t]["quantized_error"] for t in sweep},
             "constrain-then-train SNN (quantized ANN weights)": {t: 100 * ctt[t]["ctt_error"] for t in sweep}},
            prefix + "fig8b_time_steps.png", xlabel="encoding window T", log2_x=True),
        "fig7c": plots.plot_representation_error(
            {**{f"constrain-then-train, T={t}": row["representation_error"] for t, row in ctt.items()},
             f"tandem-trained weights, T={t_main}": discrepancy}, prefix + "fig7c_discrepancy.png"),
        "table2": plots.plot_synops(synops, prefix + "table2_synops.png"),
        "fig9": plots.plot_direction_preservation(fig9_raw["floor"], prefix + "fig9_angle_pcc.png"),
        "fig9_unrounded": plots.plot_direction_preservation(
            fig9_raw["unrounded"], prefix + "fig9_angle_pcc_unrounded.png"),
        "fig11": plots.plot_spike_counts([synops[t] for t in config.synops_time_steps],
                                         prefix + "fig11_spike_counts.png"),
    }


def run(config: Config, record_file: Optional[str] = None) -> dict:
    """Trains every run of ``config``, measures the five findings, writes figures, results
    and (``record_file``) a ``reproduce_cifar10`` record; returns the results."""
    wall = time.time()
    commit, dirty = records.commit()  # of the code that runs, not of the tree at the end
    os.makedirs(os.path.join(config.out_dir, "models"), exist_ok=True)
    data = load_data(config)
    x_analysis, batch = data["x_val"][:config.analysis_examples], config.eval_batch_size
    models, runs = train_runs(config, data, x_analysis)
    ctt = constrain_then_train(config, data, models, runs, x_analysis)
    exports = export_main_window(config, data, models)
    main_model = models[f"tandem_T{config.time_steps}"]
    discrepancy = analysis.representation_error(main_model, x_analysis, batch_size=batch)
    synops = {t: tk.count_synops(models[f"tandem_T{t}"], data["x_val"][:config.synops_examples],
                                 batch_size=batch) for t in config.synops_time_steps}
    fig9, fig9_raw = fig9_summary(main_model, x_analysis, batch)
    results = records.jsonable({
        "data": {"train": len(data["y_train"]), "validation": len(data["y_val"]),
                 "test": len(data.get("y_test", [])), "image_shape": list(data["image_shape"])},
        "runs": runs, "constrain_then_train": {str(t): v for t, v in ctt.items()},
        "tandem_representation_error": discrepancy, "synops": synops, "direction_preservation": fig9,
        "figures": plot_figures(config, runs, ctt, discrepancy, synops, fig9_raw), "exports": exports,
        "config": dataclasses.asdict(config)})
    results["findings"] = assess(results)
    results["wall_seconds"] = round(time.time() - wall, 1)
    with open(os.path.join(config.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(config.out_dir, "results.md"), "w") as f:
        f.write(report(results) + "\n")
    if record_file:
        records.write("reproduce_cifar10", {k: v for k, v in results.items() if k != "config"},
                      results["config"], path=record_file, commit=commit, dirty=dirty)
    return results


FLAGS = flags.FLAGS
flags.DEFINE_enum("budget", "small", list(BUDGETS), "Named configuration: tiny (tests), small "
                  "(~7 min idle on 2 cores), medium (~1-2 h), full (the paper's recipe, GPU).")
flags.DEFINE_string("train_dir", None, "Image folder <dir>/<class>/*.jpg|png (CIFAR-10 training set).")
flags.DEFINE_string("test_dir", None, "Optional image folder with the same classes (test split).")
flags.DEFINE_string("out_dir", "/tmp/reproduce_cifar10", "Where results.json / results.md go.")
flags.DEFINE_string("figures_dir", None, "Where the PNG figures go (default <out_dir>/figures).")
flags.DEFINE_string("record_file", records.RECORDS, "Append the result record here ('' for none).")
_OVERRIDES = (("width_divisor", "integer"), ("train_size", "integer"), ("val_size", "integer"),
              ("test_size", "integer"), ("epochs", "integer"), ("batch_size", "integer"),
              ("time_steps", "integer"), ("analysis_examples", "integer"),
              ("synops_examples", "integer"), ("seed", "integer"), ("lr_step_epochs", "integer"),
              ("learning_rate", "float"), ("lr_step_factor", "float"), ("lr_schedule", "string"),
              ("augment", "string"))
for _name, _kind in _OVERRIDES:
    getattr(flags, f"DEFINE_{_kind}")(_name, None, f"Override the budget's {_name}.")
flags.DEFINE_list("sweep_time_steps", None, "Override the budget's window sweep (Fig. 8B).")
flags.DEFINE_list("synops_time_steps", None, "Override the budget's SynOps windows (Table II).")


def main(argv: Sequence[str]) -> None:
    del argv
    overrides = {n: getattr(FLAGS, n) for n, _ in _OVERRIDES}
    overrides.update(sweep_time_steps=FLAGS.sweep_time_steps, synops_time_steps=FLAGS.synops_time_steps)
    try:
        config = make_config(FLAGS.budget, FLAGS.train_dir, test_dir=FLAGS.test_dir,
                             out_dir=FLAGS.out_dir, figures_dir=FLAGS.figures_dir, **overrides)
        results = run(config, FLAGS.record_file or None)
    except (ValueError, datasets.DatasetError) as error:  # e.g. a missing or empty image folder
        _common.usage_error(str(error))
    print(report(results))
    print(f"wall time {results['wall_seconds']} s; results in {config.out_dir}")


if __name__ == "__main__":
    _common.run(main)
