"""The docs' tables made from the records: ``python -m bench.tables`` rewrites them in place,
``--check`` names the docs whose tables are out of date (exit 1).

:data:`TABLES` maps a table's name to its maker (records -> ``(markdown, records used)``); the
performance tables take the records converted from a named file, so that a new run does not
silently replace what a section discusses. The benchmarks print their records' tables with the
same functions. Medians are upper medians, as the benchmarks take them.

Example:
  >>> record = {"figures": {"rows": [{"seed": 0, "policy": "float32", "test_accuracy": 0.98}],
  ...                       "mean_accuracy": {"float32": 0.98}}}
  >>> print(digits_table(record))
  | seed   | float32    |
  |--------|------------|
  | 0      | 98.00%     |
  | mean   | **98.00%** |
"""
from __future__ import annotations

import os
import statistics
import sys
from typing import Any, Callable, Sequence

from bench.records import Table, latest, latest_each, markdown, of, pct, regenerate

median = statistics.median_high
CORES = 2  # "unloaded-equivalent img/s" = batch / (CPU s / 2 cores), RESULTS.md's definition
POLICIES = ("float32", "mixed_bfloat16")
BUDGETS = ("tiny", "small", "medium", "full")


def _f(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def from_files(table: Callable[..., str], *sources: str, **options: Any) -> Table:
    """A maker: ``table(*records, **options)`` of the latest record of each ``"kind:name"``,
    the one converted from ``bench/results/<name>.json``."""
    def make(frame):
        used = [latest(of(frame, kind, converted_from=f"bench/results/{name}.json"))
                for kind, name in (source.split(":") for source in sources)]
        return table(*used, **options), used
    return make


def from_config(table: Callable[..., str], kind: str, every: bool = False, **config: Any) -> Table:
    """A maker: ``table(record)`` of the latest record of ``kind`` run with ``config`` (its
    flags), or with ``every``, ``table(*records)`` of all of them, oldest first."""
    def make(frame):
        used = of(frame, kind, **config)
        used = used if every and used else [latest(used)]
        return table(*used), used
    return make


# -- training step, memory, inference, profile (bench.train_step, memory, inference, ...) --

def _rows(r: dict, **match: Any) -> dict:
    """A ``train_step`` record's rows with ``match``, by mode."""
    return {row["mode"]: row for row in r["figures"]["rows"] if all(row[k] == v for k, v in match.items())}


def _torch_rows(r: dict) -> dict:
    """A ``torch_reference`` record's medians by mode, as ``train_step`` rows name them."""
    f = r["figures"]
    return {m: dict(median_s=median(f["step_s"][m]), median_cpu_s=median(f["cpu_s"][m]),
                    images_per_s=f["images_per_s"][m], best_s=min(f["step_s"][m])) for m in ("tandem", "ann")}


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


def train_step_t10_table(*used: dict, labels: Sequence[str]) -> str:
    """T=10: every mode of ``train_step`` and ``torch_reference`` records, by ``labels``."""
    ours, rows = [(label, r) for label, r in zip(labels, used) if r["kind"] == "train_step"], []
    for policy in dict.fromkeys(row["policy"] for _, r in ours for row in r["figures"]["rows"]):
        for label, r in ours:
            for mode, row in _rows(r, policy=policy, T=10).items():
                rows.append([f"tandem_keras {label}", policy, mode, f"{row['median_s']:.1f}",
                             f"{row['images_per_s']:.1f}", f"{row['median_cpu_s']:.2f}",
                             f"{row['batch'] * CORES / row['median_cpu_s']:.1f}",
                             *(("1", "1", "") if mode == "ann" else (
                                 f"{row['ratio_to_ann']:.2f}", f"{row['cpu_ratio_to_ann']:.2f}",
                                 f"{row['bound_shared']:.2f} ({row['bound_issue']:.2f})"))])
    for label, r in zip(labels, used):
        if r["kind"] == "torch_reference":
            by_mode, f = _torch_rows(r), r["figures"]
            for mode, row in by_mode.items():
                wall, best = row["median_s"], row["best_s"]  # best: shown if under half the median
                rows.append([f"authors' PyTorch {label}", "float32", mode,
                             f"{wall:.1f}" + (f" (best {best:.2f})" if best < wall / 2 else ""),
                             f"{row['images_per_s']:.1f}", f"{row['median_cpu_s']:.2f}",
                             f"{f['batch'] * CORES / row['median_cpu_s']:.1f}",
                             *(("", "", "") if mode == "ann" else (
                                 f"{f['tandem_over_ann']:.2f}",
                                 f"{row['median_cpu_s'] / by_mode['ann']['median_cpu_s']:.1f}", ""))])
    return markdown(rows, ["implementation", "policy", "mode", "wall s / step (median)", "img/s (wall, loaded)",
                           "CPU s / step", "unloaded-equiv. img/s", "time / ANN (wall)", "CPU / ANN", "bound"])


def side_by_side_table(r: dict, t: dict) -> str:
    """A ``train_step`` record at T=10 beside a ``torch_reference`` one, and their ratio."""
    cols = [(p, m) for p in POLICIES for m in ("tandem", "ann")]
    ours = {(p, m): row for p in POLICIES for m, row in _rows(r, policy=p, T=10).items()}
    torch = {("float32", m): row for m, row in _torch_rows(t).items()}

    def cells(rows, key, img):
        return ["" if col not in rows else format(rows[col][key], "#.3g") + (
            f" ({rows[col]['images_per_s']:.1f}{' img/s' if i == 0 else ''})" if img else "")
            for i, col in enumerate(cols)]

    def ratio(col):
        theirs, mine = torch[("float32", col[1])], ours[col]
        return (f"{theirs['median_s'] / mine['median_s']:.1f}x wall, "
                f"{theirs['median_cpu_s'] / mine['median_cpu_s']:.1f}x CPU")

    tandem = {p: ours[(p, "tandem")] for p in POLICIES}
    return markdown([["tandem_keras, wall", *cells(ours, "median_s", True)],
                     ["tandem_keras, CPU", *cells(ours, "median_cpu_s", False)],
                     ["authors' PyTorch loop, wall", *cells(torch, "median_s", True)],
                     ["authors' PyTorch loop, CPU", *cells(torch, "median_cpu_s", False)],
                     ["**ratio, PyTorch / tandem_keras**", f"**{ratio(cols[0])}**", ratio(cols[1]),
                      f"**{ratio(cols[2])}** (vs PyTorch float32)", ""]],
                    ["", *(f"{'ANN' if m == 'ann' else m} {p}" for p, m in cols)]) + (
        "\n\nTandem/ANN: " + ", ".join(
            f"{row['ratio_to_ann']:.2f}{' (wall)' if p == 'float32' else ''} / "
            f"{row['cpu_ratio_to_ann']:.2f}{' (CPU)' if p == 'float32' else ''} in {p}" for p, row in tandem.items())
        + f", bound {tandem['float32']['bound_shared']:.2f}.")


def train_step_range_table(r: dict) -> str:
    """A short ``train_step`` record: the range of its timed steps, ratios of the medians."""
    def span(values):
        return f"{min(values):.2f}-{max(values):.2f}"

    rows = r["figures"]["rows"]
    return markdown([[row["mode"], span(row["step_s"]), span(row["cpu_s"])] for row in rows]
                    + [[f"{row['mode']} / ANN (medians)", f"{row['ratio_to_ann']:.2f}",
                        f"{row['cpu_ratio_to_ann']:.2f}"] for row in rows if row["mode"] != "ann"],
                    ["mode", "wall s / step (every timed step)", "CPU s / step"])


def train_step_runs_table(*used: dict) -> str:
    """Tandem and ANN img/s of several ``train_step`` records, per policy."""
    runs, rows = ", ".join(f"run {i}" for i in range(1, len(used) + 1)), []
    for policy in dict.fromkeys(row["policy"] for r in used for row in r["figures"]["rows"]):
        by_mode = [_rows(r, policy=policy) for r in used]
        tandem = [row["tandem"] for row in by_mode]
        rows.append(["tandem_keras", policy, ", ".join(f"{row['images_per_s']:.1f}" for row in tandem),
                     ", ".join(f"{row['ann']['images_per_s']:.1f}" for row in by_mode),
                     ", ".join(f"{row['ratio_to_ann']:.2f}" for row in tandem),
                     f"{tandem[0]['bound_shared']:.2f} ({tandem[0]['bound_issue']:.2f} issue's formula)"
                     if policy == "float32" else ""])
    return markdown(rows, ["implementation", "policy", f"tandem img/s ({runs})", f"ANN img/s ({runs})",
                           "tandem / ANN time", "bound"])


PROFILE_LABELS = {  # bench.profile_step's categories as RESULTS.md section 3 words them
    "forward: conv over T (per-step W*s(t))":
        "forward: the T per-step convolutions / matmuls of the spiking layers (time folded into batch)",
    "backward: coupled ANN convs/matmuls (input + weight grads)":
        "backward: coupled-ANN input and weight gradients (`Conv2DBackpropInput/Filter`, matmuls)",
    "optimizer (Adam)": "optimizer (Adam, 44 M parameters, 33.5 M of them in tandem_dense1)",
    "backward: other autodiff (BN, encoder, readout)":
        "backward: other autodiff (BN, encoder, readout, the count's gradient broadcast over T)",
    "forward: IF recurrence": "forward: IF recurrence (unrolled over T)",
    "backward: coupling (rate gradient, bounded ReLU mask)": "backward: coupling (rate gradient, bounded-ReLU mask)",
    "forward: time sums (counts, summed products)": "forward: time sums (input counts, summed products)",
    "forward: ANN layers (normalize, encoder conv+BN, readout)":
        "forward: ANN layers (normalize, encoder conv + BN, readout)",
}


def profile_table(r: dict, labels: dict = PROFILE_LABELS) -> str:
    """``bench.profile_step``: each category's share of the op time (idle excluded)."""
    busy = {k: v for k, v in r["figures"]["by_category_us"].items() if k != "idle"}
    return markdown([[labels.get(name, name), pct(us / sum(busy.values()), 1)]
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

    return markdown([[row["T"], name, row["assert_ops"][name], quartiles(row[f"{name}_over_unchecked_wall_q25_q50_q75"]),
                      quartiles(row[f"{name}_over_unchecked_cpu_q25_q50_q75"])]
                     for row in r["figures"]["rows"] for name in ("shipped", "every_layer")],
                    ["T", "checks", "Assert ops", "time / unchecked (q25 / q50 / q75)",
                     "CPU / unchecked (q25 / q50 / q75)"])


def digits_table(r: dict) -> str:
    """``bench.digits_precision``: SNN test accuracy per seed and policy, and the mean."""
    rows, mean = r["figures"]["rows"], r["figures"]["mean_accuracy"]
    policies = list(dict.fromkeys(row["policy"] for row in rows))
    accuracy = {(row["seed"], row["policy"]): row["test_accuracy"] for row in rows}
    return markdown([[seed, *(pct(accuracy[(seed, p)]) for p in policies)]
                     for seed in dict.fromkeys(row["seed"] for row in rows)]
                    + [["mean", *(f"**{pct(mean[p])}**" for p in policies)]], ["seed", *policies])


def onednn_table(*used: dict) -> str:
    """``onednn`` records: per mode, s per step with oneDNN off and on, the ratios (and their
    range over the rounds), how far the two settings' logits are apart."""
    rows = []
    for r in used:
        for row in r["figures"]["rows"]:
            by_round: dict = {}
            for run in r["figures"].get("runs", []):
                by_round.setdefault(run.get("round"), {})[run["setting"]] = run["median_s"][row["mode"]]
            ratios = [x["0"] / x["1"] for x in by_round.values() if "0" in x and "1" in x]
            rows.append([r.get("date_utc", "")[:16].replace("T", " "), len(ratios) or "-", row["network"], row["T"],
                         row["mode"], f"{row['median_s_0']:.3f}", f"{row['median_s_1']:.3f}",
                         f"**{row['off_over_on']:.2f}**", f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-",
                         f"{row['cpu_off_over_on']:.2f}", f"{row['logits_max_abs_diff']:.1e}",
                         pct(row["argmax_agreement"], 1)])
    return markdown(rows, ["run (UTC)", "rounds", "network", "T", "mode", "s / step, oneDNN off",
                           "s / step, oneDNN on", "off / on (wall)", "per round", "off / on (CPU)",
                           "logits: max difference", "same argmax"])


# -- the reproduction and the spike-count study (bench.reproduce_cifar10, spike_count_decoding) --

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


SPIKE_COUNT_LABELS = {  # the spike-count decoding study's variants, in table order
    "membrane": "membrane decoding (reference)", "membrane_nodrop": "membrane decoding, no dropout",
    "paper": "spike count, the paper's", "tie": "paper's training, ties by final potential in the loss too",
    "scale": "(a) scale 10/T on the counts", "lscale": "(a) learned scale, init 10/T",
    "st": "(b) straight-through output coupling", "nodrop": "(c) no dropout before output",
    "st_nodrop": "(b) + (c)", "scale_st": "(a) + (b)", "scale_st_nodrop": "(a) + (b) + (c)"}


def _run_key(r: dict) -> tuple:
    return r["config"]["budget"], r["config"]["epochs"], r["figures"]["time_steps"], r["figures"]["variant"]


def _rank(order: Sequence[str], name: str) -> tuple:
    return (list(order).index(name), "") if name in order else (len(order), name)


def spike_count_runs(frame) -> list[dict]:
    """The latest ``spike_count_decoding`` record of every budget, epochs, T and variant."""
    def order(r):
        budget, epochs, t, variant = _run_key(r)
        return _rank(BUDGETS, budget), epochs, t, _rank(SPIKE_COUNT_LABELS, variant)
    return sorted(latest_each(of(frame, "spike_count_decoding"), _run_key).values(), key=order)


def spike_count_decoding(frame) -> "tuple[str, list[dict]]":
    """Validation errors of :func:`spike_count_runs` under both decision rules."""
    def cell(v):
        return "-" if v is None else pct(v)

    used, rows = spike_count_runs(frame), []
    for r in used:
        (budget, epochs, t, variant), f = _run_key(r), r["figures"]
        val = f["val"]
        # every spike-count variant but paper predicts with the tie rule; paper's record has both
        membrane_rule = f.get("val_membrane_tie_rule_error",
                              val["error"] if "tie_fraction" in val and variant != "paper" else None)
        rows.append([f"{budget}, {epochs} ep", t, SPIKE_COUNT_LABELS.get(variant, variant), cell(val["error"]),
                     cell(val.get("error_count_index_rule")), cell(membrane_rule), cell(val.get("tie_fraction")),
                     cell(val.get("all_silent_fraction")), f"{f['train_seconds']:.0f}"])
    return markdown(rows, ["budget", "T", "readout", "error (decision rule of the model)",
                           "count, ties to lower index", "count, ties by final potential", "ties",
                           "all outputs silent", "train s"]), used


def tie_rule_change(budget: str, epochs: int) -> Table:
    """Per T, membrane decoding against the paper's spike-count model under both rules."""
    def make(frame):
        runs = {(t, v): r for r in spike_count_runs(frame) for b, e, t, v in [_run_key(r)] if (b, e) == (budget, epochs)}
        rows, used = [], []
        for t in sorted({t for t, v in runs if v == "paper" and (t, "membrane") in runs}):
            membrane, paper = runs[(t, "membrane")], runs[(t, "paper")]
            m, i = 100 * membrane["figures"]["val"]["error"], 100 * paper["figures"]["val"]["error"]
            tie = 100 * paper["figures"]["val_membrane_tie_rule_error"]
            rows.append([t, f"{m:.2f}%", f"{i:.2f}%", f"{tie:.2f}%", f"**{tie - i:+.2f} points**", f"**{tie - m:+.2f}**"])
            used += [membrane, paper]
        return markdown(rows, ["T", "membrane decoding", "paper's spike count (ties to lower index)",
                               "with the final-potential tie rule (`spike_count_tie`)", "change",
                               "gap to membrane"]), used
    return make


def spike_count_ceiling(frame) -> "tuple[str, list[dict]]":
    """A spike-count model's errors under both tie rules and the ceiling of any."""
    latest_runs = sorted(latest_each(of(frame, "spike_count_ceiling"), _run_key).items())
    rows = [[f"{budget}, {epochs} ep", t, SPIKE_COUNT_LABELS.get(variant, variant), pct(f["error_index_rule"]),
             pct(f["error_membrane_rule"]), f"**{pct(f['error_ceiling'])}**", pct(f["tie_fraction"], 1),
             pct(f["true_class_at_top_count_fraction"], 1)]
            for (budget, epochs, t, variant), r in latest_runs for f in [r["figures"]]]
    return markdown(rows, ["budget", "T", "readout", "ties to lower index", "ties by final potential",
                           "ceiling (ties to the true class)", "top count tied",
                           "true class at the top count"]), [r for _, r in latest_runs]


def trained_models(frame) -> "tuple[str, list[dict]]":
    """The latest ``trained_model`` record of every name: recipe, errors, where it is."""
    used, rows = list(latest_each(of(frame, "trained_model"), lambda r: r["config"]["name"]).values()), []
    for r in used:
        c, f = r["config"], r["figures"]
        tandem, wall = c["mode"] == "tandem", f.get("train_wall_seconds")
        rows.append([
            c["name"], c["mode"], "-" if c["mode"] == "ann" else c["time_steps"],
            f"{c['model']}/{c.get('width_divisor', 1)}", c["mixed_precision"], f"{c['epochs']:g}",
            f"**{f['top1_error']:.2f}%** ({f.get('split')}, {f.get('examples')} images)", f"{f['top5_error']:.2f}%",
            (tandem and _f(f.get("synops_ratio"), ".3f")) or "-", "-" if wall is None else f"{wall / 60:.0f} min",
            "not committed" if os.path.isabs(f["saved_model"]) else
            f"`{f['saved_model']}` ({f['saved_model_bytes'] / 2**20:.1f} MiB)"])
    return markdown(rows, ["model", "mode", "T", "width", "precision", "epochs", "top-1 error", "top-5 error",
                           "SynOps SNN/ANN", "training wall", "SavedModel"]), used


# -- converting a trained ANN (bench.convert_cifar10) --

def _label(row: dict) -> str:
    if row["method"] == "ann":
        return "ANN"
    v0 = row.get("initial_potential") or 0.0
    start = f", V(0)={v0:g}θ" if v0 else ""
    return f"converted, θ=1{start}" if row["method"] == "converted" else f"calibrated p{row['percentile']:g}{start}"


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
        return markdown([[c["name"], c["time_steps"], _label(row), f"{row['val_error']:.2f}%"] for row in f["rows"]],
                        ["network", "T", "method", "validation error"])
    return markdown([[c["name"], c["time_steps"], *_finetune_cells(r)]], ["network", "T", *FINETUNE_COLUMNS])


def _key(r: dict) -> tuple:
    c = r["config"]
    return c["name"], c["time_steps"], c["step"], _schedule(c) if c["step"] == "finetune" else None


def conversion_finetune(frame) -> "tuple[str, list[dict]]":
    """Every fine-tuning run (latest per network, T, schedule and budget)."""
    used = [r for r in latest_each(of(frame, "conversion"), lambda r: (
        *_key(r), r["config"].get("epochs"), r["config"].get("steps_per_epoch"))).values()
            if r["config"]["step"] == "finetune"]
    return markdown([[r["config"]["name"], r["config"]["time_steps"], *_finetune_cells(r)] for r in used],
                    ["network", "T", *FINETUNE_COLUMNS]), used


def conversion_zero_shot(frame) -> "tuple[str, list[dict]]":
    """Every zero-shot measurement: a row per network, T and V(0), a column per calibration."""
    used = [r for r in latest_each(of(frame, "conversion"), _key).values() if r["config"]["step"] == "zero_shot"]
    rows = []
    for r in used:
        c, f = r["config"], r["figures"]
        for v0 in sorted({row.get("initial_potential") or 0.0 for row in f["rows"] if row["method"] != "ann"}):
            row = {"network": c["name"], "T": c["time_steps"], "V(0)": f"{v0:g}θ", "ANN": f"{f['ann_error']:.2f}%"}
            for x in f["rows"]:
                if x["method"] != "ann" and (x.get("initial_potential") or 0.0) == v0:
                    row["θ = 1" if x["method"] == "converted" else f"p{x['percentile']:g}"] = f"{x['val_error']:.2f}%"
            rows.append(row)
    return markdown(rows), used


def conversion(frame) -> "tuple[str, list[dict]]":
    """Per network and T: ANN, converted (no training), calibrated, fine-tuned."""
    found = latest_each(of(frame, "conversion"), _key)
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
            return "-" if not x else (f"**{x['figures']['val_error']:.2f}%** ({x['figures']['examples_seen'] / 45000:.1f} "
                                      f"epochs, {_minutes(x['figures']['train_wall_s'])})")
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


def _study_training(c: dict) -> str:
    if c.get("start_from"):
        return f"{c['mode']}, from {os.path.basename(os.path.normpath(c['start_from']))}"
    start = "scratch"
    if c.get("init_from"):
        start = (f"converted from {os.path.basename(os.path.normpath(c['init_from']))}, "
                 f"p{c['percentile']:g}")
    v0 = f"V(0)={c['initial_potential']:g}θ"
    if c.get("rounding") is not None and c["rounding"] != c["initial_potential"]:
        v0 += f" + {c['rounding'] - c['initial_potential']:g}θ bias"
    parts = [c["mode"], v0, start]
    if c.get("distill"):
        parts.append(f"distilled (α={c['alpha']:g}, τ={c['temperature']:g})")
    return ", ".join(parts)


def _study_cells(r: dict) -> list:
    c, f = r["config"], r["figures"]
    curve = f["per_epoch"]
    best = min(curve, key=lambda e: e["val_error"])
    steps = f["steps"] // max(f["epochs"], 1)
    budget = f"{f['epochs']} epochs x {steps}, {f['train_wall_s'] / 60:.1f} min"
    others = ", ".join(f"{m} {e:.2f}%" for m, e in f.get("modes", {}).items())
    return [_study_network(r), c["time_steps"], c["row"], _study_training(c), budget,
            f"**{f['val_error']:.2f}%**", f"{best['val_error']:.2f}% (ep. {best['epoch']})",
            others or "-", ", ".join(f"{e['val_error']:.1f}" for e in curve)]


def study_record_table(r: dict) -> str:
    """One ``accuracy_study`` record, as the program prints it: its budget, the validation
    error after the last epoch, the best epoch, the same weights' error in the other modes and
    the error after every epoch (the curve that tells a slower convergence from a higher
    plateau).

    Example:
      >>> r = {"config": {"network": "net", "time_steps": 4, "row": "tandem", "mode": "tandem",
      ...                 "initial_potential": 0.5, "init_from": "", "distill": ""},
      ...      "figures": {"val_error": 20.0, "epochs": 2, "steps": 1406, "train_wall_s": 600.0,
      ...                  "modes": {"quantized": 25.0}, "per_epoch": [
      ...                      {"epoch": 1, "val_error": 30.0}, {"epoch": 2, "val_error": 20.0}]}}
      >>> for column, cell in zip(STUDY_COLUMNS, _study_cells(r)):
      ...     print(f"{column}: {cell}")
      network: net
      T: 4
      row: tandem
      training: tandem, V(0)=0.5θ, scratch
      budget: 2 epochs x 703, 10.0 min
      error: **20.00%**
      best: 20.00% (ep. 2)
      other modes: quantized 25.00%
      per epoch: 30.0, 20.0
    """
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
    return from_config(train_step_table, "train_step", networks=networks, time_steps=time_steps,
                       policies=list(policies), repeats=repeats)


SMALL = dict(train_size=10000, val_size=5000, epochs=2, time_steps=4, width_divisor=8)
MEDIUM = dict(train_size=45000, val_size=5000, epochs=3, time_steps=4, width_divisor=8)
TABLES: dict[str, Table] = {
    "reproduce_small_findings": reproduction("small", findings_table, **SMALL),
    "reproduce_small_runs": reproduction("small", runs_table, **SMALL),
    "reproduce_medium_findings": reproduction("medium", findings_table, **MEDIUM),
    "reproduce_medium_runs": reproduction("medium", runs_table, **MEDIUM),
    "spike_count_decoding": spike_count_decoding,
    "spike_count_ceiling": spike_count_ceiling,
    "spike_count_tie_rule_medium": tie_rule_change("medium", 6),
    "trained_models": trained_models,
    "conversion": conversion, "conversion_zero_shot": conversion_zero_shot,
    "conversion_finetune": conversion_finetune,
    "study": study,
    "train_step_T10": from_files(
        train_step_t10_table, "train_step:train_step_cifarnet_T10", "train_step:train_step_cifarnet_T10_run2",
        "torch_reference:torch_reference_T10_run2", labels=("run 1", "run 2", "run 2")),
    "train_step_T10_less_loaded": from_files(side_by_side_table, "train_step:train_step_cifarnet_T10_run3",
                                             "torch_reference:torch_reference_T10_run3"),
    "train_step_T10_xla": from_files(train_step_range_table, "train_step:train_step_cifarnet_T10_xla"),
    "train_step_T_sweep": from_files(train_step_table, "train_step:train_step_cifarnet_T1_4_16"),
    "train_step_w4": from_files(train_step_table, "train_step:train_step_cifarnet_w4"),
    "train_step_T10_idle": from_files(train_step_runs_table, "train_step:train_step_cifarnet_T10_idle",
                                      "train_step:train_step_cifarnet_T10_idle2"),
    "train_step_architectures": _graph(["resnet20", "vgg11"], ["4"], 10),
    "train_step_architectures_r5": _graph(["resnet20", "vgg11"], ["4"], 5),
    "train_step_cifarnet_T10_graph": _graph(["cifarnet"], ["10"], 7),
    "train_step_cifarnet_T10_graph_r3": _graph(["cifarnet"], ["10"], 3),
    "train_step_cifarnet_w4_graph": _graph(["cifarnet_w4"], ["4", "10"], 5),
    "train_step_bf16_without_avx512_bf16": _graph(["vgg11_w2", "cifarnet_w4"], ["4"], 5, POLICIES),
    "onednn_w4": from_config(onednn_table, "onednn", every=True, network="cifarnet_w4", time_steps=4),
    "memory_w4": from_files(memory_table, "memory:memory_cifarnet_w4"),
    "memory_full": from_files(memory_table, "memory:memory_cifarnet", "memory:memory_cifarnet_tandem_T32"),
    "profile_step": from_files(profile_table, "profile_step:profile_cifarnet_T10_float32"),
    "digits_precision": from_files(digits_table, "digits_precision:digits_precision"),
    "inference_cifarnet": from_files(inference_table, "inference:inference_cifarnet"),
    "inference_cifarnet_bf16_T10": from_files(inference_table, "inference:inference_cifarnet_bf16_T10", cpu=True),
    "inference_cifarnet_w4": from_files(inference_table, "inference:inference_cifarnet_w4", cpu=True),
    "input_checks_w4": from_files(input_checks_table, "input_checks:input_checks_cifarnet_w4"),
}

if __name__ == "__main__":
    sys.exit(regenerate(TABLES, check_only="--check" in sys.argv[1:]))
