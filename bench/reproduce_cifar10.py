"""Reproduces the tandem-learning paper's CIFAR-10 findings at a chosen budget.

    python -m bench.reproduce_cifar10 --budget=small --train_dir=/tmp/cifar/cifar10_jpeg/train

``--train_dir`` holds one sub-folder of images per class, split 90/10 by ``common.datasets``;
``--test_dir`` (same layout) adds a test error. A budget is a named :class:`Config`;
:func:`recipe_values` turns it, for one run (mode, window, decoding), into the
``train.config.TrainConfig`` that ``train.recipe`` builds and compiles, as ``python -m train``
does from its flags. Budgets (every value can be overridden by its flag): ``tiny`` (seconds,
for the tests), ``small`` (CIFARNet / 8, 10k / 5k images, 2 epochs, cosine, T = 4, sweep T in
{1, 2, 4, 8}: 7.4 min on the idle 2-core machine), ``medium`` (all 45k / 5k images, 3 epochs
with augmentation, 1-2 hours) and ``full`` (the authors' recipe for a GPU: 150 epochs, batch
256, Adam 1e-3 x0.1 every 50 epochs, T = 10).

Trained: ``ann``, ``quantized_T{t}`` (Eq. 11; run as the SNN it is constrain-then-train),
``tandem_T{t}`` (membrane decoding, every window of the sweep and of the SynOps windows) and
``tandem_spike_T{T}`` (spike-count decoding). Findings (:func:`assess`, against the paper):
Fig. 8A, Sec. III-C / Fig. 7C, Fig. 8B, Table II, Fig. 9. Outputs: ``--out_dir``
(``results.json``, ``results.md``, ``models/<run>.keras``, SavedModels of the main window in
``export/`` for ``python -m eval --split=validation``), PNG figures
(``cifar10_<budget>_<figure>.png``) and a ``reproduce_cifar10`` record.

Example:
  >>> make_config("small", "/data/train").sweep_time_steps
  (1, 2, 4, 8)
  >>> recipe_values(make_config("small", "/data/train"), "quantized", 8).time_steps
  8
  >>> tie_fraction(np.array([[2.0, 2.0, 0.0], [1.0, 3.0, 0.0]]))
  0.5
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Optional, Sequence

from bench import harness  # first: TensorFlow's start-up lines held back
from bench import records
from bench.tables import findings_table, runs_table
from absl import flags, logging
import keras
import numpy as np
import tensorflow as tf
import tandem_keras as tk
from common import datasets, pipeline
from tandem_keras import analysis, plots
from train import recipe
from train.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Config:
    """One reproduction run; :data:`BUDGETS` holds the presets."""

    budget: str
    train_dir: str
    test_dir: Optional[str] = None
    out_dir: str = "/tmp/reproduce_cifar10"
    figures_dir: Optional[str] = None  # default: <out_dir>/figures
    width_divisor: int = 8
    train_size: int = 5000
    val_size: int = 2000
    test_size: int = 10000
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"  # cosine | step | constant
    lr_step_epochs: int = 50
    lr_step_factor: float = 0.1
    augment: str = "none"  # cifar | none
    dropout: float = 0.2  # on the last hidden layer's counts
    time_steps: int = 4  # the main window (Fig. 8A, Fig. 9)
    sweep_time_steps: tuple = (1, 2, 4, 8)  # Fig. 8B and constrain-then-train
    synops_time_steps: tuple = (4, 8)  # Table II
    analysis_examples: int = 256  # Fig. 7C and Fig. 9 (the paper: one batch of 256)
    synops_examples: int = 1000
    eval_batch_size: int = 250
    run_eagerly: bool = False  # tiny: a few steps run faster eagerly than traced
    seed: int = 0


BUDGETS: dict[str, dict[str, Any]] = {
    "tiny": dict(width_divisor=32, train_size=48, val_size=16, test_size=16, epochs=1, batch_size=16,
                 lr_schedule="constant", time_steps=2, sweep_time_steps=(1, 2), synops_time_steps=(2,),
                 analysis_examples=8, synops_examples=8, eval_batch_size=16, run_eagerly=True, dropout=0.0),
    "small": dict(width_divisor=8, train_size=10000, val_size=5000, test_size=5000, epochs=2),
    "medium": dict(width_divisor=8, train_size=45000, val_size=5000, epochs=3, augment="cifar",
                   synops_time_steps=(4, 10)),
    "full": dict(width_divisor=1, train_size=45000, val_size=5000, epochs=150, batch_size=256,
                 lr_schedule="step", augment="cifar", time_steps=10, sweep_time_steps=(1, 2, 4, 8, 10),
                 synops_time_steps=(4, 10)),
}


def make_config(budget: str, train_dir: str, **overrides: Any) -> Config:
    """The preset ``budget`` with ``overrides`` (``None`` values ignored); ``ValueError``
    naming a bad value."""
    if budget not in BUDGETS:
        raise ValueError(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if not train_dir:
        raise ValueError("--train_dir is required: a folder with one sub-folder of images per class")
    values = {**BUDGETS[budget], **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("sweep_time_steps", "synops_time_steps"):
        values[key] = tuple(sorted({int(t) for t in values.get(key, getattr(Config, key))}))
    config = Config(budget=budget, train_dir=train_dir, **values)
    for key in ("width_divisor", "train_size", "val_size", "test_size", "epochs", "batch_size", "time_steps",
                "analysis_examples", "synops_examples", "eval_batch_size"):
        if int(getattr(config, key)) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(config, key)}")
    if min(config.sweep_time_steps + config.synops_time_steps, default=1) < 1:
        raise ValueError("time steps must be >= 1")
    if config.lr_schedule not in ("cosine", "step", "constant"):
        raise ValueError(f"lr_schedule must be cosine, step or constant, got {config.lr_schedule!r}")
    if config.augment not in ("cifar", "none"):
        raise ValueError(f"augment must be cifar or none, got {config.augment!r}")
    if config.batch_size > config.train_size:
        raise ValueError(f"batch_size {config.batch_size} is larger than train_size {config.train_size}")
    return config


def recipe_values(config: Config, mode: str, time_steps: int, decode: str = "membrane") -> TrainConfig:
    """The ``train.recipe`` configuration of one run of ``config`` (CIFARNet / width_divisor)."""
    shared = ("dropout", "width_divisor", "learning_rate", "lr_schedule", "lr_step_epochs",
              "lr_step_factor", "epochs", "batch_size", "augment", "seed", "run_eagerly")
    return TrainConfig(
        model="cifarnet", mode=mode, time_steps=time_steps, decode=decode, weight_decay=0.0,
        model_name=f"cifarnet_w{config.width_divisor}_{mode}_T{time_steps}_{decode}",
        jit_compile=False, **{name: getattr(config, name) for name in shared})


def _to_arrays(examples: tf.data.Dataset, limit: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*examples.take(limit).batch(1024).as_numpy_iterator())
    return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32)


def load_data(config: Config) -> dict[str, Any]:
    """Train / validation (/ test) arrays of the image folders: ``common.datasets``' fixed 90/10
    partition, the first ``train_size`` / ``val_size`` examples of each part."""
    source = datasets.load(f"folder:{config.train_dir}", validation_split=0.1)
    data = dict(zip(("x_train", "y_train"), _to_arrays(source.split("train")[0], config.train_size)),
                **dict(zip(("x_val", "y_val"), _to_arrays(source.split("validation")[0], config.val_size))),
                num_classes=source.num_classes, image_shape=source.image_shape, source=source)
    if config.test_dir:
        test = datasets.load(f"folder:{config.test_dir}", validation_split=0.0)
        if test.image_shape != source.image_shape or test.num_classes != source.num_classes:
            raise ValueError(f"--test_dir images {test.image_shape} / {test.num_classes} classes do "
                             f"not match --train_dir {source.image_shape} / {source.num_classes}")
        data["x_test"], data["y_test"] = _to_arrays(test.split("train")[0], config.test_size)
    return data


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``model(x)`` in inference mode, batch by batch."""
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def error_rate(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Top-1 error (fraction) of ``argmax(model(x))`` (ties: the first class)."""
    return float(np.mean(np.argmax(predict_logits(model, x, batch_size), axis=1) != y))


def tie_fraction(logits: np.ndarray) -> float:
    """Fraction of examples whose largest logit is shared by several classes."""
    return float(np.mean(np.sum(logits == logits.max(axis=1, keepdims=True), axis=1) > 1))


def fig9_summary(model: keras.Model, x: np.ndarray, batch_size: int) -> tuple[list, dict]:
    """Fig. 9 per layer against the unrounded ``a`` and ``floor(a)`` (keys ``*_floor``), and
    both raw results ``{"unrounded", "floor"}`` for the plots."""
    raw = {name: analysis.direction_preservation(model, x, batch_size=batch_size, rounding=r)
           for name, r in (("unrounded", None), ("floor", "floor"))}
    floor = {r["name"]: r for r in analysis.summarize(raw["floor"])}
    names = {"angle_deg": "angle_deg_floor", "pcc": "pcc_floor", "pcc_median": "pcc_floor_median"}
    return [{**row, **{names[k]: v for k, v in floor[row["name"]].items() if k in names}}
            for row in analysis.summarize(raw["unrounded"])], raw


class EpochMonitor(keras.callbacks.Callback):
    """The validation error (and, with ``analysis_x``, Fig. 9) after every epoch (``curve``)
    or after the last one."""

    def __init__(self, x, y, batch_size, analysis_x=None, curve=True):
        super().__init__()
        self.x, self.y, self.batch_size, self.analysis_x, self.curve = x, y, batch_size, analysis_x, curve
        self.errors, self.fig9, self.last_logits = [], [], None

    def on_epoch_end(self, epoch, logs=None):
        if not self.curve and epoch + 1 < self.params["epochs"]:
            return
        self.last_logits = predict_logits(self.model, self.x, self.batch_size)
        self.errors.append(float(np.mean(np.argmax(self.last_logits, axis=1) != self.y)))
        if self.analysis_x is not None:
            self.fig9.append(fig9_summary(self.model, self.analysis_x, self.batch_size)[0])
        logging.info("  epoch %d: validation error %.4f", epoch + 1, self.errors[-1])


def train_one(config: Config, data: dict, mode: str, time_steps: int, decode: str = "membrane",
              curve: bool = False, fig9_x=None) -> tuple[keras.Model, dict]:
    """Trains one run with ``train.recipe``'s model and compile; returns it and its result:
    the validation error (``curve``: per epoch too), ties, the test error."""
    keras.utils.set_random_seed(config.seed)
    x, y, steps = data["x_train"], data["y_train"], len(data["y_train"]) // config.batch_size
    model = recipe.compiled_model(recipe_values(config, mode, time_steps, decode), data["image_shape"],
                                  data["num_classes"], steps)
    monitor = EpochMonitor(data["x_val"], data["y_val"], config.eval_batch_size, fig9_x, curve)
    source = datasets.Source("arrays", {"train": (tf.data.Dataset.from_tensor_slices((x, y)), len(y))},
                             int(y.max()) + 1, tuple(data["image_shape"]), augment=config.augment, cache=True)
    start = time.time()  # common.pipeline's batches: per-epoch shuffle, the budget's augmentation
    history = model.fit(pipeline.train_batches(source, batch_size=config.batch_size, seed=config.seed,
                                               start_epoch=0, epochs=config.epochs),
                        epochs=config.epochs, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[monitor])
    result = {"mode": mode, "time_steps": time_steps, "decode": decode,
              "train_seconds": round(time.time() - start, 1),
              "train_loss": [float(v) for v in history.history["loss"]],
              "val_error": monitor.errors[-1], **({"val_error_per_epoch": monitor.errors} if curve else {})}
    start, logits = time.time(), monitor.last_logits
    if fig9_x is not None:
        result["fig9_per_epoch"] = monitor.fig9
    if decode != "membrane":
        result["val_tie_fraction"] = tie_fraction(logits)
    if "x_test" in data:
        result["test_error"] = error_rate(model, data["x_test"], data["y_test"], config.eval_batch_size)
    result["eval_seconds"] = round(time.time() - start, 1)
    return model, result


def train_runs(config: Config, data: dict, x_analysis: np.ndarray) -> tuple[dict, dict]:
    """Trains and saves every run of the budget; returns the models and results by name."""
    models, runs, t_main = {}, {}, config.time_steps

    def train(name, *args, **kwargs):
        models[name], runs[name] = train_one(config, data, *args, **kwargs)
        models[name].save(os.path.join(config.out_dir, "models", f"{name}.keras"))
        logging.info("%s: validation error %.4f, %.0f s", name, runs[name]["val_error"],
                     runs[name]["train_seconds"])

    train("ann", "ann", t_main, curve=True)
    for t in sorted(set(config.sweep_time_steps) | {t_main}):
        train(f"quantized_T{t}", "quantized", t, curve=(t == t_main))
    train(f"tandem_T{t_main}", "tandem", t_main, curve=True, fig9_x=x_analysis)
    train(f"tandem_spike_T{t_main}", "tandem", t_main, decode="spike_count", curve=True)
    for t in sorted((set(config.sweep_time_steps) | set(config.synops_time_steps)) - {t_main}):
        train(f"tandem_T{t}", "tandem", t)
    return models, runs


def run(config: Config, record_file: Optional[str] = None) -> dict:
    """Trains every run of ``config``, measures the five findings, writes the figures, results
    and (``record_file``) a ``reproduce_cifar10`` record; returns the results."""
    wall, (commit, dirty) = time.time(), records.commit()  # of the code that runs
    os.makedirs(os.path.join(config.out_dir, "models"), exist_ok=True)
    data = load_data(config)
    x_analysis, batch = data["x_val"][:config.analysis_examples], config.eval_batch_size
    t_main = config.time_steps
    models, runs = train_runs(config, data, x_analysis)
    ctt = {}  # per window: the quantized ANN run as the SNN; its discrepancy per layer (Fig. 7C)
    for t in sorted(set(config.sweep_time_steps) | {t_main}):
        quantized = models[f"quantized_T{t}"]
        snn = tk.with_mode(quantized, "tandem")
        ctt[t] = {"quantized_error": runs[f"quantized_T{t}"]["val_error"],
                  "ctt_error": error_rate(snn, data["x_val"], data["y_val"], batch),
                  "representation_error": analysis.representation_error(quantized, x_analysis,
                                                                        batch_size=batch)}
        if "x_test" in data:
            ctt[t]["ctt_test_error"] = error_rate(snn, data["x_test"], data["y_test"], batch)
    exports = {name: os.path.join(config.out_dir, "export", name)
               for name in (f"tandem_T{t_main}", f"quantized_T{t_main}")}
    for name, path in exports.items():  # for python -m eval --split=validation
        harness.save_trained(models[name], data["source"], export_dir=path, validation_split=0.1,
                             train_examples_used=len(data["y_train"]), epochs=config.epochs,
                             seed=config.seed)
    main_model = models[f"tandem_T{t_main}"]
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
        f.write(findings_table(results) + "\n\n" + runs_table(results) + "\n")
    if record_file:
        records.write("reproduce_cifar10", {k: v for k, v in results.items() if k != "config"},
                      results["config"], path=record_file, commit=commit, dirty=dirty)
    return results


def plot_figures(config: Config, runs: dict, ctt: dict, discrepancy: list, synops: dict,
                 fig9_raw: dict) -> dict:
    """The paper's figures of the reproduction as PNGs; returns their paths."""
    prefix = os.path.join(config.figures_dir or os.path.join(config.out_dir, "figures"),
                          f"cifar10_{config.budget}_")
    t, sweep = config.time_steps, config.sweep_time_steps
    curves = {"ReLU ANN": "ann", "quantized ANN (Eq. 11)": f"quantized_T{t}",
              "tandem SNN, membrane decoding": f"tandem_T{t}",
              "tandem SNN, spike-count decoding": f"tandem_spike_T{t}"}
    return {
        "fig8a": plots.plot_error_curves(
            {label: 100 * np.asarray(runs[name]["val_error_per_epoch"]) for label, name in curves.items()},
            prefix + "fig8a_schemes.png"),
        "fig8b": plots.plot_error_curves(
            {"tandem SNN": {s: 100 * runs[f"tandem_T{s}"]["val_error"] for s in sweep},
             "quantized ANN": {s: 100 * ctt[s]["quantized_error"] for s in sweep},
             "constrain-then-train SNN (quantized ANN weights)":
                 {s: 100 * ctt[s]["ctt_error"] for s in sweep}},
            prefix + "fig8b_time_steps.png", xlabel="encoding window T", log2_x=True),
        "fig7c": plots.plot_representation_error(
            {**{f"constrain-then-train, T={s}": row["representation_error"] for s, row in ctt.items()},
             f"tandem-trained weights, T={t}": discrepancy}, prefix + "fig7c_discrepancy.png"),
        "table2": plots.plot_synops(synops, prefix + "table2_synops.png"),
        "fig9": plots.plot_direction_preservation(fig9_raw["floor"], prefix + "fig9_angle_pcc.png"),
        "fig9_unrounded": plots.plot_direction_preservation(
            fig9_raw["unrounded"], prefix + "fig9_angle_pcc_unrounded.png"),
        "fig11": plots.plot_spike_counts([synops[s] for s in config.synops_time_steps],
                                         prefix + "fig11_spike_counts.png"),
    }


def _verdict(checks: list[tuple[str, bool]]) -> str:
    """``"yes"`` if every check holds, ``"no"`` if none, else ``"partly (<holding> only)"``.

    Example:
      >>> _verdict([("membrane decoding", True), ("spike-count decoding", False)])
      'partly (membrane decoding only)'
    """
    held = [name for name, ok in checks if ok]
    if len(held) == len(checks):
        return "yes"
    return f"partly ({', '.join(held)} only)" if held else "no"


def assess(results: dict) -> list[dict]:
    """The five findings as rows ``{"finding", "measured", "paper", "reproduced"}``."""
    runs, cfg, points = results["runs"], results["config"], lambda f: round(100.0 * f, 2)
    t = cfg["time_steps"]
    q, tm, ts = (runs[f"quantized_T{t}"]["val_error"], runs[f"tandem_T{t}"]["val_error"],
                 runs[f"tandem_spike_T{t}"]["val_error"])
    ties = points(runs[f"tandem_spike_T{t}"].get("val_tie_fraction", float("nan")))
    ctt, sweep, syn, fig9 = (results["constrain_then_train"], cfg["sweep_time_steps"],
                             results["synops"], results["direction_preservation"])
    margins = {s: points(ctt[str(s)]["ctt_error"] - runs[f"tandem_T{s}"]["val_error"]) for s in sweep}
    diffs = [r["mean_abs_diff"] for r in ctt[str(t)]["representation_error"] if r["name"] != "encoder"]
    rising = sum(b >= a for a, b in zip(diffs, diffs[1:]))
    grows = bool(len(diffs) > 1 and diffs[-1] > diffs[0] and rising >= len(diffs) // 2)
    errors = {s: runs[f"tandem_T{s}"]["val_error"] for s in sweep}
    order = sorted(errors)
    steps = [errors[a] - errors[b] for a, b in zip(order, order[1:])]

    def finite(key):
        return [v for v in (r.get(key) for r in fig9) if v is not None and np.isfinite(v)]

    def pair(r, floor, unrounded, spec):  # one layer's "floor(a) [unrounded a]"
        a, b = ("-" if r.get(k) is None else format(r[k], spec) for k in (floor, unrounded))
        return f"{r['name']} {a} [{b}]"

    angles, pccs = finite("angle_deg_floor"), finite("pcc_floor_median")
    return [
        {"finding": "1. Fig. 8A: tandem SNN within ~1.5 points of the quantized ANN",
         "measured": (f"T={t} validation error: ReLU ANN {points(runs['ann']['val_error'])}%, "
                      f"quantized ANN {points(q)}%, tandem membrane {points(tm)}% "
                      f"({points(tm - q):+.2f}), tandem spike-count {points(ts)}% "
                      f"({points(ts - q):+.2f}; tied top logits on {ties}% of images)"),
         "paper": "CIFARNet T=10 test error: SNN 8.46% (spike count) / 9.93% (membrane); SNN "
                  "matches the bounded CNN in the end, converges slower than the plain CNN",
         "reproduced": _verdict([("membrane decoding", points(tm - q) <= 1.5),
                                 ("spike-count decoding", points(ts - q) <= 1.5)])},
        {"finding": "2. Sec. III-C / Fig. 7: constrain-then-train loses more than tandem; "
                    "discrepancy grows with depth",
         "measured": ("CTT minus tandem error (points) per T: "
                      + ", ".join(f"T={s}: {m:+.2f}" for s, m in margins.items())
                      + f"; mean |c-a| per layer at T={t}: " + ", ".join(f"{d:.3f}" for d in diffs)),
         "paper": "~11% accuracy drop for CTT at T=10 on CIFAR-10; discrepancy grows with depth",
         "reproduced": _verdict([("CTT worse at every T", all(m > 0 for m in margins.values())),
                                 ("discrepancy grows with depth", grows)])},
        {"finding": "3. Fig. 8B: error falls with T and flattens",
         "measured": ", ".join(f"T={s}: {points(e)}%" for s, e in errors.items()),
         "paper": "below 12% at T=1, falling with T, no gain beyond T=10",
         "reproduced": _verdict([("falls", errors[order[-1]] < errors[order[0]]),
                                 ("flattens", len(steps) < 2 or steps[-1] < steps[0])])},
        {"finding": "4. Table II: SynOps SNN/ANN ratio below 1",
         "measured": ", ".join(f"T={s}: {syn[s]['synops_ratio']:.3f} (with encoder MACs "
                               f"{syn[s]['synops_ratio_with_encoder']:.3f})" for s in syn),
         "paper": "AlexNet, CIFAR-10: 0.40 at T=10, 0.27 at T=5",
         "reproduced": _verdict([("ratio < 1", all(syn[s]["synops_ratio"] < 1 for s in syn))])},
        {"finding": "5. Fig. 9: small angle between ANN and SNN counts, PCC of W c and W a high",
         "measured": ("mean angle (deg) between c and floor(a) (Eq. 11) [and unrounded a]: "
                      + ", ".join(pair(r, "angle_deg_floor", "angle_deg", ".1f") for r in fig9)
                      + "; median PCC of W c, W floor(a) [unrounded a]: "
                      + ", ".join(pair(r, "pcc_floor_median", "pcc_median", ".3f")
                                  for r in fig9 if r.get("pcc_floor_median") is not None)),
         "paper": "angles below 24 degrees on average, PCC above 0.9 for most samples",
         "reproduced": _verdict([("angle", bool(angles) and float(np.mean(angles)) < 24),
                                 ("PCC", bool(pccs) and min(pccs) > 0.9)])}]


FLAGS = flags.FLAGS
flags.DEFINE_enum("budget", "small", list(BUDGETS), "Named configuration: tiny (tests), small "
                  "(~7 min idle on 2 cores), medium (~1-2 h), full (the paper's recipe, GPU).")
flags.DEFINE_string("train_dir", None, "Image folder <dir>/<class>/*.jpg|png (CIFAR-10 training set).")
flags.DEFINE_string("test_dir", None, "Optional image folder with the same classes (test split).")
flags.DEFINE_string("out_dir", "/tmp/reproduce_cifar10", "Where results.json / results.md go.")
flags.DEFINE_string("figures_dir", None, "Where the PNG figures go (default <out_dir>/figures).")
flags.DEFINE_string("record_file", records.RECORDS, "Append the result record here ('' for none).")
_OVERRIDES = {name: "integer" for name in (
    "width_divisor", "train_size", "val_size", "test_size", "epochs", "batch_size", "time_steps",
    "analysis_examples", "synops_examples", "seed", "lr_step_epochs")}
_OVERRIDES.update(learning_rate="float", lr_step_factor="float", lr_schedule="string", augment="string")
for _name, _kind in _OVERRIDES.items():
    getattr(flags, f"DEFINE_{_kind}")(_name, None, f"Override the budget's {_name}.")
flags.DEFINE_list("sweep_time_steps", None, "Override the budget's window sweep (Fig. 8B).")
flags.DEFINE_list("synops_time_steps", None, "Override the budget's SynOps windows (Table II).")


def main(argv: Sequence[str]) -> None:
    del argv
    overrides = {n: getattr(FLAGS, n) for n in (*_OVERRIDES, "sweep_time_steps", "synops_time_steps")}
    try:
        config = make_config(FLAGS.budget, FLAGS.train_dir, test_dir=FLAGS.test_dir, out_dir=FLAGS.out_dir,
                             figures_dir=FLAGS.figures_dir, **overrides)
        results = run(config, FLAGS.record_file or None)
    except (ValueError, datasets.DatasetError) as error:  # e.g. a missing or empty image folder
        harness.usage_error(str(error))
    print(findings_table(results) + "\n\n" + runs_table(results))
    print(f"wall time {results['wall_seconds']} s; results in {config.out_dir}")


if __name__ == "__main__":
    harness.run(main)
