"""The docs' tables made from the records: ``python -m bench.tables`` rewrites them in place,
``--check`` names the docs whose tables are out of date (exit 1).

:data:`TABLES` maps a table's name to its maker (records -> ``(markdown, records used)``). The
benchmarks print their records' tables with the same functions. A table that can no longer
change is plain Markdown in the docs, citing its records: those of records converted from the
early JSON files, and of concluded studies whose programs are gone (the authors' PyTorch loop,
oneDNN, bfloat16 on digits, the spike-count decoding study).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from bench.records import ROOT, Table, latest, latest_each, markdown, of, pct, regenerate



def _f(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


# -- training step, memory, inference, profile (bench.train_step, memory, inference, ...) --

def train_step_table(r: dict) -> str:
    """A ``train_step`` record: img/s, s per step, ratios to the ANN, the library's bound."""
    rows, bound = r["figures"]["rows"], {"tandem": "bound_shared", "bptt": "bound_bptt"}
    errors = ["error"] if any("error" in row for row in rows) else []
    keys = (("images_per_s", ".1f"), ("median_s", ".2f"), ("median_cpu_s", ".2f"),
            ("ratio_to_ann", ".2f"), ("cpu_ratio_to_ann", ".2f"))
    return markdown([[row["network"], row["policy"], int(row["jit"]), row["T"], row["mode"],
                      *(_f(row.get(key), spec) for key, spec in keys),
                      _f(row.get(bound.get(row["mode"], "")), ".2f"), *(row.get(e, "") for e in errors)]
                     for row in rows],
                    ["network", "policy", "jit", "T", "mode", "img/s", "wall s / step", "CPU s / step",
                     "time / ANN", "CPU / ANN", "bound (library)", *errors])


def profile_table(r: dict) -> str:
    """``bench.train_step --measure=profile``: each category's share of the op time (idle excluded)."""
    busy = {k: v for k, v in r["figures"]["by_category_us"].items() if k != "idle"}
    return markdown([[name, pct(us / sum(busy.values()), 1)]
                     for name, us in sorted(busy.items(), key=lambda kv: -kv[1])]
                    + [["data pipeline", "0 (one in-memory batch; `bench/reproduce_cifar10.py` covers the "
                                         "tf.data pipeline)"]], ["where the time goes", "share"])


def memory_table(*used: dict) -> str:
    """``memory`` rows: the allocator's and RSS peaks, and their growth from the smallest T."""
    rows, cells = [row for r in used for row in r["figures"]["rows"]], []
    alloc, rss = "allocator_step_peak_above_before_mib", "step_peak_above_before_mib"
    for mode in dict.fromkeys(row["mode"] for row in rows):
        mine = sorted((row for row in rows if row["mode"] == mode), key=lambda row: row["T"])
        cells += [[mode, row["T"], f"{row[alloc]:.0f}", f"{row[alloc] - mine[0][alloc]:.0f}",
                   f"{row['peak_mib']:.0f}", f"{row[rss] - mine[0][rss]:.0f}"] for row in mine]
    return markdown(cells, ["mode", "T", "allocator: step peak MiB", "allocator growth from T=1 MiB",
                            "peak RSS MiB", "RSS: step peak above pre-step RSS, growth from T=1 MiB"])


def inference_table(r: dict, cpu: bool = False) -> str:
    """``bench.inference``: SNN and ANN img/s per T, SNN/ANN time (``cpu``: and CPU) ratio."""
    by = {(row["T"], row["model"]): row for row in r["figures"]["rows"]}
    rows = [[t, f"{snn['images_per_s']:.1f}", f"{ann['images_per_s']:.1f}", f"{snn['time_over_ann']:.2f}",
             *([f"{snn['median_cpu_s']:.2f}", f"{snn['cpu_over_ann']:.2f}"] if cpu else [])]
            for t in sorted({t for t, _ in by}) for snn, ann in [(by[(t, "snn")], by[(t, "ann")])]]
    return markdown(rows, ["T", "SNN img/s", "ANN img/s", "SNN time / ANN time",
                           *(["SNN CPU s / batch", "SNN CPU / ANN CPU"] if cpu else [])])


def input_checks_table(r: dict) -> str:
    """``input_checks``: per T, the asserts and time of the shipped and of all checks over none."""
    def quartiles(values):
        return " / ".join(f"{v:.3f}" for v in values)

    return markdown([[row["T"], name, row["assert_ops"][name],
                      quartiles(row[f"{name}_over_unchecked_wall_q25_q50_q75"]),
                      quartiles(row[f"{name}_over_unchecked_cpu_q25_q50_q75"])]
                     for row in r["figures"]["rows"] for name in ("shipped", "every_layer")],
                    ["T", "checks", "Assert ops", "time / unchecked (q25 / q50 / q75)",
                     "CPU / unchecked (q25 / q50 / q75)"])


# -- the reproduction (bench.reproduce_cifar10) --

def findings_table(results: dict) -> str:
    """The five findings of a reproduction as a Markdown table."""
    return markdown([{**row, "measured": row["measured"].replace("|", "\\|")} for row in results["findings"]],
                    ["finding", "measured", "paper", "reproduced"])


def runs_table(results: dict) -> str:
    """Every run of a reproduction: mode, window, decoding, errors, seconds."""
    test = ["test error"] if any("test_error" in r for r in results["runs"].values()) else []
    return markdown([[name, r["mode"], r["time_steps"], r["decode"], pct(r["val_error"]),
                      *(pct(r["test_error"]) for _ in test), r["train_seconds"], r["eval_seconds"]]
                     for name, r in results["runs"].items()],
                    ["run", "mode", "T", "decode", "val error", *test, "train s", "eval s"])


def reproduction(budget: str, part: Callable[[dict], str], **config: Any) -> Table:
    """``part`` (findings or runs) of the latest ``reproduce_cifar10`` record of ``budget``."""
    def make(frame):
        r = latest(of(frame, "reproduce_cifar10", budget=budget, **config))
        return part(dict(r["figures"], config=r["config"])), [r]
    return make


def trained_models(frame) -> "tuple[str, list[dict]]":
    """The latest ``trained_model`` record of every name: recipe, errors, where it is."""
    used, rows = list(latest_each(of(frame, "trained_model"), lambda r: r["config"]["name"]).values()), []
    for r in used:
        c, f = r["config"], r["figures"]
        tandem, wall = c["mode"] == "tandem", f.get("train_wall_seconds")
        rows.append([
            c["name"], c["mode"], "-" if c["mode"] == "ann" else c["time_steps"],
            f"from {_ann_name(c['init_from'])}" if c.get("init_from") else f"{c['model']}/{c.get('width_divisor', 1)}",
            c["mixed_precision"], f"{c['epochs']:g}",
            f"**{f['top1_error']:.2f}%** ({f.get('split')}, {f.get('examples')} images)",
            f"{f['top5_error']:.2f}%",
            (tandem and _f(f.get("synops_ratio"), ".3f")) or "-", "-" if wall is None else f"{wall / 60:.0f} min",
            "not committed" if os.path.isabs(f["saved_model"]) else "removed (superseded)"
            if not os.path.isdir(os.path.join(ROOT, f["saved_model"])) else
            f"`{f['saved_model']}` ({f['saved_model_bytes'] / 2**20:.1f} MiB)"])
    return markdown(rows, ["model", "mode", "T", "width", "precision", "epochs", "top-1 error", "top-5 error",
                           "SynOps SNN/ANN", "training wall", "SavedModel"]), used


# -- converting a trained ANN (bench.convert_cifar10) --

def _label(row: dict) -> str:
    if row["method"] == "ann":
        return "ANN"
    if row["method"] == "default":
        return "tk.convert's defaults"
    v0 = row.get("initial_potential") or 0.0
    start = f", V(0)={v0:g}θ" if v0 else ""
    start += ", negative spikes" if row.get("negative_spikes") else ""
    if row["method"] == "converted":
        return f"converted, θ=1{start}"
    return f"calibrated p{row['percentile']:g}{start}"


def _minutes(seconds) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _schedule(c: dict) -> str:
    q = c.get("quantized_epochs") or 0
    return c["schedule"] if not q else f"quantized mode {q} epoch{'s' * (q > 1)}, then tandem"


def _finetune_cells(r: dict) -> list:
    c, f = r["config"], r["figures"]
    schedule = _schedule(c)
    if f.get("quantized_error") is not None:
        schedule += (f" (after the quantized epochs: quantized ANN {f['quantized_error']:.2f}%, "
                     f"its SNN {f['snn_after_quantized']:.2f}%)")
    return [schedule, f"p{c['percentile']:g}, V(0)={c['initial_potential']:g}θ", f"{f['start_error']:.2f}%",
            f"{f.get('examples_seen', 0) / 45000:.2f} ({c['epochs']} x {f['steps'] // c['epochs']} steps)",
            f"**{f['val_error']:.2f}%**", f"{f['val_error'] - f['ann_error']:+.2f}",
            _minutes(f.get("train_wall_s")), _minutes(f.get("train_cpu_s"))]


FINETUNE_COLUMNS = ["schedule", "calibration", "start", "epochs of 45k (x steps)", "fine-tuned",
                    "vs ANN (points)", "wall", "CPU"]


def conversion_record_table(r: dict) -> str:
    """One ``conversion`` record, as the program prints it.

    Example:
      >>> r = {"config": {"name": "net", "time_steps": 4, "step": "zero_shot"},
      ...      "figures": {"rows": [{"method": "ann", "val_error": 10.0}, {"method": "calibrated",
      ...          "percentile": 99.9, "initial_potential": 0.5, "val_error": 30.0}]}}
      >>> print(conversion_record_table(r))
      | network   | T   | method                      | validation error   |
      |-----------|-----|-----------------------------|--------------------|
      | net       | 4   | ANN                         | 10.00%             |
      | net       | 4   | calibrated p99.9, V(0)=0.5θ | 30.00%             |
    """
    c, f = r["config"], r["figures"]
    if c["step"] == "zero_shot":
        return markdown([[c["name"], c["time_steps"], _label(row), _zero_shot_cell(row)]
                         for row in f["rows"]], ["network", "T", "method", "validation error"])
    return markdown([[c["name"], c["time_steps"], *_finetune_cells(r)]], ["network", "T", *FINETUNE_COLUMNS])


def _zero_shot_cell(row: dict) -> str:
    quantized = row.get("quantized_error")
    return f"{row['val_error']:.2f}%" + (f" (its quantized ANN {quantized:.2f}%)" if quantized is not None else "")


def _key(r: dict) -> tuple:
    c = r["config"]
    return (c["name"], c["time_steps"], c["step"], _schedule(c) if c["step"] == "finetune" else None,
            bool(c.get("negative_spikes")))


def conversion_finetune(frame) -> "tuple[str, list[dict]]":
    """Every fine-tuning run (latest per network, T, schedule and budget)."""
    used = [r for r in latest_each(of(frame, "conversion"), lambda r: (
        *_key(r), r["config"].get("epochs"), r["config"].get("steps_per_epoch"))).values()
            if r["config"]["step"] == "finetune"]
    return markdown([[r["config"]["name"], r["config"]["time_steps"], *_finetune_cells(r)] for r in used],
                    ["network", "T", *FINETUNE_COLUMNS]), used


def conversion_zero_shot(frame) -> "tuple[str, list[dict]]":
    """Every zero-shot measurement: a row per network, T, V(0) and spike kind, a column per
    calibration, and ``tk.convert`` with its defaults (calibrated; its quantized ANN)."""
    used = [r for r in latest_each(of(frame, "conversion"), _key).values() if r["config"]["step"] == "zero_shot"]
    rows = []
    for r in used:
        c, f = r["config"], r["figures"]
        spikes = "-1/0/1" if c.get("negative_spikes") else "0/1"
        default = next((x for x in f["rows"] if x["method"] == "default"), None)
        for v0 in sorted({row.get("initial_potential") or 0.0 for row in f["rows"]
                          if row["method"] in ("converted", "calibrated")}):
            row = {"network": c["name"], "T": c["time_steps"], "spikes": spikes, "V(0)": f"{v0:g}θ",
                   "ANN": f"{f['ann_error']:.2f}%"}
            for x in f["rows"]:
                if x["method"] in ("converted", "calibrated") and (x.get("initial_potential") or 0.0) == v0:
                    column = "θ = 1" if x["method"] == "converted" else f"p{x['percentile']:g}"
                    row[column] = f"{x['val_error']:.2f}%"
            row["tk.convert's defaults"] = _zero_shot_cell(default) if default else "-"
            rows.append(row)
    return markdown(rows), used


def conversion(frame) -> "tuple[str, list[dict]]":
    """Per network and T: ANN, converted (no training), calibrated, fine-tuned."""
    found = {key[:4]: r for key, r in latest_each(of(frame, "conversion"), _key).items() if not key[4]}
    rows, used = [], []
    for (name, t, step, _), r in found.items():
        if step != "zero_shot":
            continue
        by = {_label(row): row["val_error"] for row in r["figures"]["rows"]}
        tuned = {s: found.get((name, t, "finetune", s)) for s in ("all", "progressive")}
        used += [r, *(x for x in tuned.values() if x)]
        ref = next((x for x in tuned.values() if x), None)
        chosen = ref and f"calibrated p{ref['config']['percentile']:g}"
        v0 = ref and ref["config"]["initial_potential"]

        def cell(label):
            return "-" if label not in by else f"{by[label]:.2f}%"

        def tuned_cell(x):
            if not x:
                return "-"
            f = x["figures"]
            return (f"**{f['val_error']:.2f}%** ({f['examples_seen'] / 45000:.1f} epochs, "
                    f"{_minutes(f['train_wall_s'])})")
        rows.append([name, t, cell("ANN"), cell("converted, θ=1"), cell(chosen) if chosen else "-",
                     cell(f"{chosen}, V(0)={v0:g}θ") if chosen and v0 else "-",
                     tuned_cell(tuned["all"]), tuned_cell(tuned["progressive"])])
    return markdown(rows, ["network", "T", "ReLU ANN", "converted (θ=1)", "calibrated",
                           "calibrated, V(0)=θ/2", "fine-tuned, all at once", "fine-tuned, progressive"]), used


# -- issue 28's controlled study (bench.accuracy_study) --

STUDY_COLUMNS = ["network", "T", "row", "training", "budget", "error", "best", "other modes",
                 "per epoch"]


def _study_network(r: dict) -> str:
    c = r["config"]
    if c.get("init_from"):
        return r["figures"].get("network", c["network"])
    w = c.get("width_divisor") or 1
    return c["network"] + (f" / {w}" if w > 1 else "")


def _ann_name(path: str) -> str:  # RUN/model.keras and RUN/export by RUN's name
    parts = os.path.normpath(path).split(os.sep)
    return parts[-2] if parts[-1] in ("model.keras", "export") and len(parts) > 1 else parts[-1]


def _study_training(c: dict) -> str:
    scales = ", TandemAdd scales trained" if c.get("trainable_scales") else ""
    if c.get("negative_spikes"):
        scales = ", negative spikes" + scales
    if c.get("distill"):
        scales = f", distilled (α={c['alpha']:g}, τ={c['temperature']:g})" + scales
    if c.get("start_from"):
        start = os.path.normpath(c["start_from"])
        depth = {"export": 2, "model.keras": 3}.get(os.path.basename(start), 1)   # name the run
        named = os.path.join(*start.split(os.sep)[-depth:])
        return f"{c['mode']}, from {named}{scales}"
    start = "scratch"
    if c.get("init_from"):
        start = f"converted from {_ann_name(c['init_from'])}, p{c['percentile']:g}"
    v0 = f"V(0)={c['initial_potential']:g}θ"
    if c.get("rounding") is not None and c["rounding"] != c["initial_potential"]:
        v0 += f", rounding {c['rounding']:g}"
    return ", ".join([c["mode"], v0, start]) + scales


def _rate(c: dict) -> str:
    return f" from lr {c['learning_rate']:g}" if "learning_rate" in c else ""


def _study_cells(r: dict) -> list:
    c, f = r["config"], r["figures"]
    curve = f["per_epoch"]
    best = min(curve, key=lambda e: e["val_error"])
    steps = f["steps"] // max(f["epochs"], 1)
    ema = f", weights' EMA {c['ema_momentum']:g}" if c.get("ema_momentum") else ""
    budget = (f"{f['epochs']} epochs x {steps}{_rate(c)}{ema}, "
              f"{f['train_wall_s'] / 60:.1f} min")
    others = ", ".join(f"{m} {e:.2f}%" for m, e in f.get("modes", {}).items())
    return [_study_network(r), c["time_steps"], c["row"], _study_training(c), budget,
            f"**{f['val_error']:.2f}%**", f"{best['val_error']:.2f}% (ep. {best['epoch']})",
            others or "-", ", ".join(f"{e['val_error']:.1f}" for e in curve)]


def study_record_table(r: dict) -> str:
    """One ``accuracy_study`` record: its budget, the final and the best validation error, the
    same weights in the other modes, the error per epoch (a slower convergence or a higher plateau)."""
    return markdown([_study_cells(r)], STUDY_COLUMNS)


def study(frame, network: str = "") -> "tuple[str, list[dict]]":
    """The latest ``accuracy_study`` record of every (network, T, row) (of ``network`` if
    given), in the order they were first made."""
    def key(r):
        return _study_network(r), r["config"]["time_steps"], r["config"]["row"]

    used = [r for r in latest_each(of(frame, "accuracy_study"), key).values()
            if not network or _study_network(r) == network]
    return markdown([_study_cells(r) for r in used], STUDY_COLUMNS), used


def _graph(networks: list, time_steps: list, repeats: int, policies: tuple = ("float32",)) -> Table:
    """A maker: the latest ``train_step`` record run with these flags."""
    def make(frame):
        used = [latest(of(frame, "train_step", networks=networks, time_steps=time_steps,
                          policies=list(policies), repeats=repeats))]
        return train_step_table(*used), used
    return make


SMALL = dict(train_size=10000, val_size=5000, epochs=2, time_steps=4, width_divisor=8)
MEDIUM = dict(train_size=45000, val_size=5000, epochs=3, time_steps=4, width_divisor=8)
TABLES: dict[str, Table] = {
    "reproduce_small_findings": reproduction("small", findings_table, **SMALL),
    "reproduce_small_runs": reproduction("small", runs_table, **SMALL),
    "reproduce_medium_findings": reproduction("medium", findings_table, **MEDIUM),
    "reproduce_medium_runs": reproduction("medium", runs_table, **MEDIUM),
    "trained_models": trained_models,
    "conversion": conversion, "conversion_zero_shot": conversion_zero_shot,
    "conversion_finetune": conversion_finetune,
    "study": study,
    "train_step_architectures": _graph(["resnet20", "vgg11"], ["4"], 10),
    "train_step_architectures_r5": _graph(["resnet20", "vgg11"], ["4"], 5),
    "train_step_cifarnet_T10_graph": _graph(["cifarnet"], ["10"], 7),
    "train_step_cifarnet_T10_graph_r3": _graph(["cifarnet"], ["10"], 3),
    "train_step_cifarnet_w4_graph": _graph(["cifarnet_w4"], ["4", "10"], 5),
    "train_step_bf16_without_avx512_bf16": _graph(["vgg11_w2", "cifarnet_w4"], ["4"], 5, ("float32", "mixed_bfloat16")),
}

if __name__ == "__main__":
    sys.exit(regenerate(TABLES, check_only="--check" in sys.argv[1:]))
