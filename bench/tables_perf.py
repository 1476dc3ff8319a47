"""The performance tables of ``bench/RESULTS.md``, made from ``bench.records`` records.

A ``*_table(*records)`` function makes the Markdown of its records; a benchmark prints the
table of the record it writes. :data:`TABLES` picks the records of the docs by the file they
were converted from (``converted_from``), so that a new run of a benchmark does not silently
replace the measurement a section's text discusses. Medians are upper medians, as the
benchmarks take them.

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

import statistics
from typing import Any, Callable, Mapping, Sequence

from bench import records
from bench.records import markdown, pct

Table = Callable[[Sequence[dict]], "tuple[str, list[dict]]"]
BOUND = {"tandem": "bound_shared", "bptt": "bound_bptt"}  # the ANN is the reference
CORES = 2  # "unloaded-equivalent img/s" = batch / (CPU s / 2 cores), RESULTS.md's definition
POLICIES = ("float32", "mixed_bfloat16")
median = statistics.median_high  # the benchmarks' median: the upper one for an even count


def _f(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _rows(r: dict, **match: Any) -> dict:
    """The rows of a ``train_step`` record with ``match``, by mode."""
    return {row["mode"]: row for row in r["figures"]["rows"] if all(row[k] == v for k, v in match.items())}


def _torch_rows(r: dict) -> dict:
    """A ``torch_reference`` record's medians by mode, as ``train_step`` rows name them."""
    f = r["figures"]
    return {m: dict(median_s=median(f["step_s"][m]), median_cpu_s=median(f["cpu_s"][m]),
                    images_per_s=f["images_per_s"][m], best_s=min(f["step_s"][m])) for m in ("tandem", "ann")}


def from_files(table: Callable[..., str], *sources: str, **options: Any) -> Table:
    """A table maker: ``table(*records, **options)`` of the latest record of each
    ``"kind:name"`` in ``sources``, the one converted from ``bench/results/<name>.json``."""
    def make(rs):
        used = [records.latest(rs, kind, converted_from=f"bench/results/{name}.json")
                for kind, name in (source.split(":") for source in sources)]
        return table(*used, **options), used
    return make


def from_every(table: Callable[..., str], kind: str, **config: Any) -> Table:
    """A table maker: ``table(*records)`` of every record of ``kind`` run with ``config``,
    oldest first."""
    def make(rs):
        used = records.select(rs, kind, **config)
        if not used:
            raise LookupError(f"no {kind} record with {config}")
        return table(*used), used
    return make


def from_config(table: Callable[[dict], str], kind: str, **config: Any) -> Table:
    """A table maker: ``table(record)`` of the latest record of ``kind`` run with ``config``
    (its flags, as the record's config holds them)."""
    def make(rs):
        used = records.latest(rs, kind, **config)
        return table(used), [used]
    return make


def train_step_table(r: dict) -> str:
    """Every configuration of a ``bench.train_step`` record: images/s, wall and CPU s per
    step (medians), tandem or BPTT over ANN (wall, CPU), the compute bound (and the error
    of a mode that failed to build or run, if any did)."""
    rows = r["figures"]["rows"]
    errors = ["error"] if any("error" in row for row in rows) else []
    return markdown([[row["network"], row["policy"], int(row["jit"]), row["T"], row["mode"],
                      *(_f(row.get(key), spec) for key, spec in (
                          ("images_per_s", ".1f"), ("median_s", ".2f"), ("median_cpu_s", ".2f"),
                          ("ratio_to_ann", ".2f"), ("cpu_ratio_to_ann", ".2f"))),
                      _f(row.get(BOUND.get(row["mode"], "")), ".2f"), *(row.get(e, "") for e in errors)]
                     for row in rows],
                    ["network", "policy", "jit", "T", "mode", "img/s", "wall s / step", "CPU s / step",
                     "time / ANN", "CPU / ANN", "bound (library)", *errors])


def train_step_t10_table(*used: dict, labels: Sequence[str]) -> str:
    """Section 1: CIFARNet at T=10, one row per mode of each ``train_step`` record (by policy,
    then record) and of each ``torch_reference`` record (the authors' PyTorch loop), labelled
    by ``labels`` in the order of ``used``: median wall and CPU s per step, img/s,
    unloaded-equivalent img/s, ratios to the ANN."""
    ours = [(label, r) for label, r in zip(labels, used) if r["kind"] == "train_step"]
    rows = []
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
    """Section 1a: tandem and ANN, float32 and mixed_bfloat16, of a ``train_step`` record
    at T=10 next to a ``torch_reference`` record (float32): median wall s per step (img/s)
    and CPU s to 3 significant figures, PyTorch over tandem_keras, and tandem/ANN."""
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
    """Every mode of a (short) ``train_step`` record: the range of its timed steps, wall and
    CPU s, and tandem/ANN of the medians."""
    def span(values):
        return f"{min(values):.2f}-{max(values):.2f}"

    rows = r["figures"]["rows"]
    return markdown([[row["mode"], span(row["step_s"]), span(row["cpu_s"])] for row in rows]
                    + [[f"{row['mode']} / ANN (medians)", f"{row['ratio_to_ann']:.2f}",
                        f"{row['cpu_ratio_to_ann']:.2f}"] for row in rows if row["mode"] != "ann"],
                    ["mode", "wall s / step (every timed step)", "CPU s / step"])


def train_step_runs_table(*used: dict) -> str:
    """Tandem and ANN img/s of several ``train_step`` records side by side (one row per
    policy, the runs' figures comma-separated), tandem/ANN time and the bound."""
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


#: the profile's categories (bench.profile_step) as RESULTS.md section 3 words them
PROFILE_LABELS = {
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


def profile_table(r: dict, labels: Mapping[str, str] = PROFILE_LABELS) -> str:
    """``bench.profile_step``: each category's share of the op time (idle time excluded),
    largest first (a category named as in ``labels``)."""
    busy = {k: v for k, v in r["figures"]["by_category_us"].items() if k != "idle"}
    return markdown([[labels.get(name, name), pct(us / sum(busy.values()), 1)]
                     for name, us in sorted(busy.items(), key=lambda kv: -kv[1])]
                    + [["data pipeline", "0 (one in-memory batch; `bench/reproduce_cifar10.py` covers the "
                                         "tf.data pipeline)"]], ["where the time goes", "share"])


def memory_table(*used: dict) -> str:
    """``bench.memory`` rows (of one or several records): allocator step peak and RSS, and
    their growth from the smallest T of the same mode."""
    rows, cells = [row for r in used for row in r["figures"]["rows"]], []
    alloc, rss = "allocator_step_peak_above_before_mib", "step_peak_above_before_mib"
    for mode in dict.fromkeys(row["mode"] for row in rows):
        mine = sorted((row for row in rows if row["mode"] == mode), key=lambda row: row["T"])
        cells += [[mode, row["T"], f"{row[alloc]:.0f}", f"{row[alloc] - mine[0][alloc]:.0f}",
                   f"{row['peak_mib']:.0f}", f"{row[rss] - mine[0][rss]:.0f}"] for row in mine]
    return markdown(cells, ["mode", "T", "allocator: step peak MiB", "allocator growth from T=1 MiB",
                            "peak RSS MiB", "RSS: step peak above pre-step RSS, growth from T=1 MiB"])


def inference_table(r: dict, cpu: bool = False) -> str:
    """``bench.inference``: SNN and ANN images/s per T and the SNN/ANN time ratio (``cpu``:
    also the SNN's CPU s per batch and the SNN/ANN CPU-time ratio)."""
    by = {(row["T"], row["model"]): row for row in r["figures"]["rows"]}
    rows = [[t, f"{snn['images_per_s']:.1f}", f"{ann['images_per_s']:.1f}", f"{snn['time_over_ann']:.2f}",
             *([f"{snn['median_cpu_s']:.2f}", f"{snn['cpu_over_ann']:.2f}"] if cpu else [])]
            for t in sorted({t for t, _ in by}) for snn, ann in [(by[(t, "snn")], by[(t, "ann")])]]
    return markdown(rows, ["T", "SNN img/s", "ANN img/s", "SNN time / ANN time",
                           *(["SNN CPU s / batch", "SNN CPU / ANN CPU"] if cpu else [])])


def digits_table(r: dict) -> str:
    """``bench.digits_precision``: SNN test accuracy per seed and policy, and the mean."""
    rows, mean = r["figures"]["rows"], r["figures"]["mean_accuracy"]
    policies = list(dict.fromkeys(row["policy"] for row in rows))
    accuracy = {(row["seed"], row["policy"]): row["test_accuracy"] for row in rows}
    return markdown([[seed, *(pct(accuracy[(seed, p)]) for p in policies)]
                     for seed in dict.fromkeys(row["seed"] for row in rows)]
                    + [["mean", *(f"**{pct(mean[p])}**" for p in policies)]], ["seed", *policies])


def onednn_table(*used: dict) -> str:
    """``bench.onednn`` records (one row per record and mode): the median wall and CPU s per
    training step with ``TF_ENABLE_ONEDNN_OPTS`` 0 and 1 (fresh processes, alternating), the
    off / on ratios, the range of the per-round ratios, and how far the two settings' logits are
    apart."""
    rows = []
    for r in used:
        runs = r["figures"].get("runs", [])
        for row in r["figures"]["rows"]:
            by_round: dict = {}
            for run in runs:
                by_round.setdefault(run.get("round"), {})[run["setting"]] = run["median_s"][row["mode"]]
            ratios = [x["0"] / x["1"] for x in by_round.values() if "0" in x and "1" in x]
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
            rows.append([r.get("date_utc", "")[:16].replace("T", " "), len(ratios) or "-", row["network"], row["T"],
                         row["mode"], f"{row['median_s_0']:.3f}", f"{row['median_s_1']:.3f}",
                         f"**{row['off_over_on']:.2f}**", spread, f"{row['cpu_off_over_on']:.2f}",
                         f"{row['logits_max_abs_diff']:.1e}", pct(row["argmax_agreement"], 1)])
    return markdown(rows, ["run (UTC)", "rounds", "network", "T", "mode", "s / step, oneDNN off",
                           "s / step, oneDNN on", "off / on (wall)", "per round", "off / on (CPU)",
                           "logits: max difference", "same argmax"])


def input_checks_table(r: dict) -> str:
    """``bench.input_checks``: per T, the asserts in the traced step and the inference time
    of the shipped checks and of checking every layer over no checks (quartiles of the
    per-round ratios, wall and CPU)."""
    def quartiles(values):
        return " / ".join(f"{v:.3f}" for v in values)

    return markdown([[row["T"], name, row["assert_ops"][name], quartiles(row[f"{name}_over_unchecked_wall_q25_q50_q75"]),
                      quartiles(row[f"{name}_over_unchecked_cpu_q25_q50_q75"])]
                     for row in r["figures"]["rows"] for name in ("shipped", "every_layer")],
                    ["T", "checks", "Assert ops", "time / unchecked (q25 / q50 / q75)",
                     "CPU / unchecked (q25 / q50 / q75)"])


#: table name -> maker, for bench.tables (RESULTS.md, "Performance")
TABLES: dict[str, Table] = {
    "train_step_T10": from_files(
        train_step_t10_table, "train_step:train_step_cifarnet_T10", "train_step:train_step_cifarnet_T10_run2",
        "torch_reference:torch_reference_T10_run2", labels=("run 1", "run 2", "run 2")),
    "train_step_T10_less_loaded": from_files(side_by_side_table, "train_step:train_step_cifarnet_T10_run3",
                                             "torch_reference:torch_reference_T10_run3"),
    "train_step_T10_xla": from_files(train_step_range_table, "train_step:train_step_cifarnet_T10_xla"),
    "train_step_T_sweep": from_files(train_step_table, "train_step:train_step_cifarnet_T1_4_16"),
    "train_step_w4": from_files(train_step_table, "train_step:train_step_cifarnet_w4"),
    "memory_w4": from_files(memory_table, "memory:memory_cifarnet_w4"),
    "memory_full": from_files(memory_table, "memory:memory_cifarnet", "memory:memory_cifarnet_tandem_T32"),
    "profile_step": from_files(profile_table, "profile_step:profile_cifarnet_T10_float32"),
    "digits_precision": from_files(digits_table, "digits_precision:digits_precision"),
    "inference_cifarnet": from_files(inference_table, "inference:inference_cifarnet"),
    "inference_cifarnet_bf16_T10": from_files(inference_table, "inference:inference_cifarnet_bf16_T10", cpu=True),
    "inference_cifarnet_w4": from_files(inference_table, "inference:inference_cifarnet_w4", cpu=True),
    "input_checks_w4": from_files(input_checks_table, "input_checks:input_checks_cifarnet_w4"),
    "train_step_architectures": from_config(train_step_table, "train_step", networks=["resnet20", "vgg11"],
                                            time_steps=["4"], policies=["float32"], repeats=10),
    "train_step_architectures_r5": from_config(train_step_table, "train_step", networks=["resnet20", "vgg11"],
                                               time_steps=["4"], policies=["float32"], repeats=5),
    "train_step_cifarnet_T10_graph": from_config(train_step_table, "train_step", networks=["cifarnet"],
                                                 time_steps=["10"], policies=["float32"], repeats=7),
    "train_step_cifarnet_T10_graph_r3": from_config(train_step_table, "train_step", networks=["cifarnet"],
                                                    time_steps=["10"], policies=["float32"], repeats=3),
    "train_step_cifarnet_w4_graph": from_config(train_step_table, "train_step", networks=["cifarnet_w4"],
                                                time_steps=["4", "10"], policies=["float32"], repeats=5),
    "onednn_w4": from_every(onednn_table, "onednn", network="cifarnet_w4", time_steps=4),
    "train_step_bf16_without_avx512_bf16": from_config(
        train_step_table, "train_step", networks=["vgg11_w2", "cifarnet_w4"], time_steps=["4"],
        policies=["float32", "mixed_bfloat16"], repeats=5),
    "train_step_T10_idle": from_files(train_step_runs_table, "train_step:train_step_cifarnet_T10_idle",
                                      "train_step:train_step_cifarnet_T10_idle2"),
}
