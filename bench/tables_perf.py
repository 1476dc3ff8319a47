"""The performance tables of ``bench/RESULTS.md``, made from ``bench.records`` records.

Each function returns a table maker for :data:`bench.tables.TABLES`: given every record,
it returns ``(markdown, records used)``. Records are picked by the file they were converted
from (``converted_from``), so a new run of a benchmark does not silently replace the
measurement a section's text discusses. Medians are upper medians, as the benchmarks take them.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from bench import records

Table = Callable[[Sequence[dict]], "tuple[str, list[dict]]"]
BOUND = {"tandem": "bound_shared", "bptt": "bound_bptt"}  # the ANN is the reference
CORES = 2  # "unloaded-equivalent img/s" = batch / (CPU s / 2 cores), RESULTS.md's definition


def _f(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _median(values: Sequence[float]) -> float:
    return sorted(values)[len(values) // 2]


def _row(*cells: str) -> str:
    """One Markdown table row (an empty cell as ``| |``)."""
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def _rows(r: dict, **match: Any) -> dict:
    """The rows of a ``train_step`` record with ``match``, by mode."""
    return {row["mode"]: row for row in r["figures"]["rows"]
            if all(row[k] == v for k, v in match.items())}


def train_step(source: str) -> Table:
    """Every configuration of a ``bench.train_step`` record: images/s, wall and CPU s per
    step (medians), tandem or BPTT over ANN (wall, CPU), the compute bound."""
    def make(rs):
        r = records.latest(rs, "train_step", converted_from=source)
        lines = ["| network | policy | jit | T | mode | img/s | wall s / step | CPU s / step | "
                 "time / ANN | CPU / ANN | bound (library) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in r["figures"]["rows"]:
            lines.append(
                f"| {row['network']} | {row['policy']} | {int(row['jit'])} | {row['T']} | {row['mode']} | "
                f"{_f(row.get('images_per_s'), '.1f')} | {_f(row.get('median_s'), '.2f')} | "
                f"{_f(row.get('median_cpu_s'), '.2f')} | {_f(row.get('ratio_to_ann'), '.2f')} | "
                f"{_f(row.get('cpu_ratio_to_ann'), '.2f')} | "
                f"{_f(BOUND.get(row['mode']) and row.get(BOUND[row['mode']]), '.2f')} |")
        return "\n".join(lines), [r]
    return make


def train_step_t10(runs: Mapping[str, str], torch_runs: Mapping[str, str]) -> Table:
    """Section 1: CIFARNet at T=10, one row per mode of each ``bench.train_step`` run (by
    policy, then run) and of each run of the authors' PyTorch loop (``torch_reference``);
    ``runs`` and ``torch_runs`` map a run's label to the file its record was converted from.
    Median wall and CPU s per step, img/s, unloaded-equivalent img/s, ratios to the ANN."""
    def make(rs):
        used = {k: records.latest(rs, "train_step", converted_from=s) for k, s in runs.items()}
        torch = {k: records.latest(rs, "torch_reference", converted_from=s) for k, s in torch_runs.items()}
        lines = [_row("implementation", "policy", "mode", "wall s / step (median)", "img/s (wall, loaded)",
                      "CPU s / step", "unloaded-equiv. img/s", "time / ANN (wall)", "CPU / ANN", "bound"),
                 "|---|---|---|---|---|---|---|---|---|---|"]
        policies = dict.fromkeys(row["policy"] for r in used.values() for row in r["figures"]["rows"])
        for policy in policies:
            for label, r in used.items():
                for mode, row in _rows(r, policy=policy, T=10).items():
                    ratios = ("1", "1", "") if mode == "ann" else (
                        f"{row['ratio_to_ann']:.2f}", f"{row['cpu_ratio_to_ann']:.2f}",
                        f"{row['bound_shared']:.2f} ({row['bound_issue']:.2f})")
                    lines.append(_row(f"tandem_keras {label}", policy, mode, f"{row['median_s']:.1f}",
                                      f"{row['images_per_s']:.1f}", f"{row['median_cpu_s']:.2f}",
                                      f"{row['batch'] * CORES / row['median_cpu_s']:.1f}", *ratios))
        for label, r in torch.items():
            f = r["figures"]
            cpu = {m: _median(v) for m, v in f["cpu_s"].items()}
            for mode in ("tandem", "ann"):
                wall = _median(f["step_s"][mode])
                best = min(f["step_s"][mode])  # shown when one step took under half the median
                ratios = ("", "", "") if mode == "ann" else (
                    f"{f['tandem_over_ann']:.2f}", f"{cpu['tandem'] / cpu['ann']:.1f}", "")
                lines.append(_row(f"authors' PyTorch {label}", "float32", mode,
                                  f"{wall:.1f}" + (f" (best {best:.2f})" if best < wall / 2 else ""),
                                  f"{f['images_per_s'][mode]:.1f}", f"{cpu[mode]:.2f}",
                                  f"{f['batch'] * CORES / cpu[mode]:.1f}", *ratios))
        return "\n".join(lines), list(used.values()) + list(torch.values())
    return make


def train_step_side_by_side(source: str, torch_source: str) -> Table:
    """Section 1a: tandem and ANN, float32 and mixed_bfloat16, of one ``bench.train_step``
    run at T=10 next to one run of the authors' PyTorch loop (float32): median wall s per
    step (img/s) and CPU s to 3 significant figures, PyTorch over tandem_keras, and the
    tandem/ANN ratios."""
    def make(rs):
        r = records.latest(rs, "train_step", converted_from=source)
        t = records.latest(rs, "torch_reference", converted_from=torch_source)
        cols = [(p, m) for p in ("float32", "mixed_bfloat16") for m in ("tandem", "ann")]
        ours = {(p, m): row for p in ("float32", "mixed_bfloat16") for m, row in _rows(r, policy=p, T=10).items()}
        f = t["figures"]
        torch = {("float32", m): dict(median_s=_median(f["step_s"][m]), median_cpu_s=_median(f["cpu_s"][m]),
                                      images_per_s=f["images_per_s"][m]) for m in ("tandem", "ann")}

        def cells(rows, key, img):
            out = []
            for i, col in enumerate(cols):
                row = rows.get(col)
                text = "" if row is None else format(row[key], "#.3g")
                if row is not None and img:
                    text += f" ({row['images_per_s']:.1f}{' img/s' if i == 0 else ''})"
                out.append(text)
            return out

        def ratio(col):
            theirs, mine = torch[("float32", col[1])], ours[col]
            return (f"{theirs['median_s'] / mine['median_s']:.1f}x wall, "
                    f"{theirs['median_cpu_s'] / mine['median_cpu_s']:.1f}x CPU")

        lines = [_row("", *(f"{'ANN' if m == 'ann' else m} {p}" for p, m in cols)), "|---|---|---|---|---|",
                 _row("tandem_keras, wall", *cells(ours, "median_s", True)),
                 _row("tandem_keras, CPU", *cells(ours, "median_cpu_s", False)),
                 _row("authors' PyTorch loop, wall", *cells(torch, "median_s", True)),
                 _row("authors' PyTorch loop, CPU", *cells(torch, "median_cpu_s", False)),
                 _row("**ratio, PyTorch / tandem_keras**", f"**{ratio(cols[0])}**", ratio(cols[1]),
                      f"**{ratio(cols[2])}** (vs PyTorch float32)", ""), "",
                 "Tandem/ANN: " + ", ".join(
                     f"{ours[(p, 'tandem')]['ratio_to_ann']:.2f}{' (wall)' if p == 'float32' else ''} / "
                     f"{ours[(p, 'tandem')]['cpu_ratio_to_ann']:.2f}{' (CPU)' if p == 'float32' else ''} in {p}"
                     for p in ("float32", "mixed_bfloat16"))
                 + f", bound {ours[('float32', 'tandem')]['bound_shared']:.2f}."]
        return "\n".join(lines), [r, t]
    return make


def train_step_range(source: str) -> Table:
    """Every mode of a (short) ``bench.train_step`` run: the range of its timed steps, wall
    and CPU s, and tandem/ANN of the medians."""
    def make(rs):
        r = records.latest(rs, "train_step", converted_from=source)
        lines = ["| mode | wall s / step (every timed step) | CPU s / step |", "|---|---|---|"]
        rows = r["figures"]["rows"]
        for row in rows:
            lines.append(f"| {row['mode']} | {_range(row['step_s'])} | {_range(row['cpu_s'])} |")
        for row in rows:
            if row["mode"] != "ann":
                lines.append(f"| {row['mode']} / ANN (medians) | {row['ratio_to_ann']:.2f} | "
                             f"{row['cpu_ratio_to_ann']:.2f} |")
        return "\n".join(lines), [r]
    return make


def train_step_runs(*sources: str) -> Table:
    """Tandem and ANN img/s of several ``bench.train_step`` runs side by side (one row per
    policy, the runs' figures comma-separated), tandem/ANN time and the bound."""
    def make(rs):
        used = [records.latest(rs, "train_step", converted_from=s) for s in sources]
        runs = ", ".join(f"run {i}" for i in range(1, len(used) + 1))
        lines = [_row("implementation", "policy", f"tandem img/s ({runs})", f"ANN img/s ({runs})",
                      "tandem / ANN time", "bound"), "|---|---|---|---|---|---|"]
        for policy in dict.fromkeys(row["policy"] for r in used for row in r["figures"]["rows"]):
            rows = [_rows(r, policy=policy) for r in used]
            tandem = [row["tandem"] for row in rows]
            bound = (f"{tandem[0]['bound_shared']:.2f} ({tandem[0]['bound_issue']:.2f} issue's formula)"
                     if policy == "float32" else "")
            lines.append(_row("tandem_keras", policy, ", ".join(f"{row['images_per_s']:.1f}" for row in tandem),
                              ", ".join(f"{row['ann']['images_per_s']:.1f}" for row in rows),
                              ", ".join(f"{row['ratio_to_ann']:.2f}" for row in tandem), bound))
        return "\n".join(lines), used
    return make


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


def profile(source: str) -> Table:
    """``bench.profile_step``: each category's share of the op time (idle time excluded),
    largest first."""
    def make(rs):
        r = records.latest(rs, "profile_step", converted_from=source)
        busy = {k: v for k, v in r["figures"]["by_category_us"].items() if k != "idle"}
        total = sum(busy.values())
        lines = ["| where the time goes | share |", "|---|---|"]
        for name, us in sorted(busy.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {PROFILE_LABELS.get(name, name)} | {100 * us / total:.1f}% |")
        lines.append("| data pipeline | 0 (one in-memory batch; `bench/reproduce_cifar10.py` covers the "
                     "tf.data pipeline) |")
        return "\n".join(lines), [r]
    return make


def memory(*sources: str) -> Table:
    """``bench.memory`` rows (several records merged): allocator step peak and RSS, and
    their growth from the smallest T of the same mode."""
    def make(rs):
        used = [records.latest(rs, "memory", converted_from=s) for s in sources]
        rows = [row for r in used for row in r["figures"]["rows"]]
        lines = ["| mode | T | allocator: step peak MiB | allocator growth from T=1 MiB | peak RSS MiB | "
                 "RSS: step peak above pre-step RSS, growth from T=1 MiB |", "|---|---|---|---|---|---|"]
        for mode in dict.fromkeys(row["mode"] for row in rows):
            mine = sorted((row for row in rows if row["mode"] == mode), key=lambda row: row["T"])
            first = mine[0]
            for row in mine:
                alloc = row["allocator_step_peak_above_before_mib"]
                lines.append(
                    f"| {mode} | {row['T']} | {alloc:.0f} | "
                    f"{alloc - first['allocator_step_peak_above_before_mib']:.0f} | {row['peak_mib']:.0f} | "
                    f"{row['step_peak_above_before_mib'] - first['step_peak_above_before_mib']:.0f} |")
        return "\n".join(lines), used
    return make


def inference(source: str, cpu: bool = False) -> Table:
    """``bench.inference``: SNN and ANN images/s per T and the SNN/ANN time ratio (``cpu``:
    also the SNN's CPU s per batch and the SNN/ANN CPU-time ratio)."""
    def make(rs):
        r = records.latest(rs, "inference", converted_from=source)
        by = {(row["T"], row["model"]): row for row in r["figures"]["rows"]}
        extra = (" SNN CPU s / batch | SNN CPU / ANN CPU |", "---|---|") if cpu else ("", "")
        lines = ["| T | SNN img/s | ANN img/s | SNN time / ANN time |" + extra[0], "|---|---|---|---|" + extra[1]]
        for t in sorted({t for t, _ in by}):
            snn, ann = by[(t, "snn")], by[(t, "ann")]
            lines.append(f"| {t} | {snn['images_per_s']:.1f} | {ann['images_per_s']:.1f} | "
                         f"{snn['time_over_ann']:.2f} |"
                         + (f" {snn['median_cpu_s']:.2f} | {snn['cpu_over_ann']:.2f} |" if cpu else ""))
        return "\n".join(lines), [r]
    return make


def digits(source: str) -> Table:
    """``bench.digits_precision``: SNN test accuracy per seed and policy, and the mean."""
    def make(rs):
        r = records.latest(rs, "digits_precision", converted_from=source)
        rows = r["figures"]["rows"]
        policies = list(dict.fromkeys(row["policy"] for row in rows))
        lines = ["| seed | " + " | ".join(policies) + " |", "|---|" + "---|" * len(policies)]
        for seed in dict.fromkeys(row["seed"] for row in rows):
            acc = {row["policy"]: row["test_accuracy"] for row in rows if row["seed"] == seed}
            lines.append(f"| {seed} | " + " | ".join(f"{100 * acc[p]:.2f}%" for p in policies) + " |")
        mean = r["figures"]["mean_accuracy"]
        lines.append("| mean | " + " | ".join(f"**{100 * mean[p]:.2f}%**" for p in policies) + " |")
        return "\n".join(lines), [r]
    return make


def _results(name: str) -> str:
    return f"bench/results/{name}.json"


#: table name -> maker, for bench.tables (RESULTS.md, "Performance")
TABLES: dict[str, Table] = {
    "train_step_T10": train_step_t10(
        {"run 1": _results("train_step_cifarnet_T10"), "run 2": _results("train_step_cifarnet_T10_run2")},
        {"run 2": _results("torch_reference_T10_run2")}),
    "train_step_T10_less_loaded": train_step_side_by_side(
        _results("train_step_cifarnet_T10_run3"), _results("torch_reference_T10_run3")),
    "train_step_T10_xla": train_step_range(_results("train_step_cifarnet_T10_xla")),
    "train_step_T_sweep": train_step(_results("train_step_cifarnet_T1_4_16")),
    "train_step_w4": train_step(_results("train_step_cifarnet_w4")),
    "memory_w4": memory(_results("memory_cifarnet_w4")),
    "memory_full": memory(_results("memory_cifarnet"), _results("memory_cifarnet_tandem_T32")),
    "profile_step": profile(_results("profile_cifarnet_T10_float32")),
    "digits_precision": digits(_results("digits_precision")),
    "inference_cifarnet": inference(_results("inference_cifarnet")),
    "inference_cifarnet_bf16_T10": inference(_results("inference_cifarnet_bf16_T10"), cpu=True),
    "inference_cifarnet_w4": inference(_results("inference_cifarnet_w4"), cpu=True),
    "train_step_T10_idle": train_step_runs(_results("train_step_cifarnet_T10_idle"),
                                           _results("train_step_cifarnet_T10_idle2")),
}
