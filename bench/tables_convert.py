"""The tables of issue 19's ``conversion`` records (``bench.convert_cifar10``).

* :func:`conversion` (RESULTS.md, README): per network and T, the ANN, the converted SNN
  without training (not calibrated; calibrated; calibrated with ``V(0) = theta/2``) and
  after tandem fine-tuning (all layers at once; progressive), validation top-1 errors.
* :func:`conversion_finetune`: every fine-tuning run (one per budget), its budget and its cost.
* :func:`conversion_record_table`: one record, as the program prints it.

Example:
  >>> r = {"config": {"name": "net", "time_steps": 4, "step": "zero_shot", "initial_potential": 0.5},
  ...      "figures": {"ann_error": 10.0, "rows": [{"method": "ann", "val_error": 10.0},
  ...          {"method": "calibrated", "percentile": 99.9, "initial_potential": 0.5, "val_error": 30.0}]}}
  >>> print(conversion_record_table(r))
  | network   | T   | method                      | validation error   |
  |-----------|-----|-----------------------------|--------------------|
  | net       | 4   | ANN                         | 10.00%             |
  | net       | 4   | calibrated p99.9, V(0)=0.5θ | 30.00%             |
"""
from __future__ import annotations

from typing import Sequence

from bench import records
from bench.records import markdown

KIND = "conversion"


def _label(row: dict) -> str:
    if row["method"] == "ann":
        return "ANN"
    v0 = row.get("initial_potential") or 0.0
    start = "" if not v0 else f", V(0)={v0:g}θ"
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
    examples = f.get("examples_seen", 0)
    schedule = _schedule(c)
    if f.get("quantized_error") is not None:
        schedule += (f" (after the quantized epochs: quantized ANN {f['quantized_error']:.2f}%, "
                     f"its SNN {f['snn_after_quantized']:.2f}%)")
    return [schedule, f"p{c['percentile']:g}, V(0)={c['initial_potential']:g}θ",
            f"{f['start_error']:.2f}%", f"{examples / 45000:.2f} ({c['epochs']} x {f['steps'] // c['epochs']} steps)",
            f"**{f['val_error']:.2f}%**", f"{f['val_error'] - f['ann_error']:+.2f}",
            _minutes(f.get("train_wall_s")), _minutes(f.get("train_cpu_s"))]


FINETUNE_COLUMNS = ["schedule", "calibration", "start", "epochs of 45k (x steps)", "fine-tuned",
                    "vs ANN (points)", "wall", "CPU"]


def conversion_record_table(r: dict) -> str:
    """The table of one record."""
    c, f = r["config"], r["figures"]
    if c["step"] == "zero_shot":
        rows = [[c["name"], c["time_steps"], _label(row), f"{row['val_error']:.2f}%"] for row in f["rows"]]
        return markdown(rows, ["network", "T", "method", "validation error"])
    return markdown([[c["name"], c["time_steps"], *_finetune_cells(r)]], ["network", "T", *FINETUNE_COLUMNS])


def _key(r: dict) -> tuple:
    c = r["config"]
    return (c["name"], c["time_steps"], c["step"], _schedule(c) if c["step"] == "finetune" else None)


def conversion_finetune(rs: Sequence[dict]) -> "tuple[str, list[dict]]":
    """Every fine-tuning run (latest per network, T, schedule and budget: epochs x steps)."""
    def key(r: dict) -> tuple:
        return (*_key(r), r["config"].get("epochs"), r["config"].get("steps_per_epoch"))

    used = [r for r in records.latest_each(rs, KIND, key).values() if r["config"]["step"] == "finetune"]
    rows = [[r["config"]["name"], r["config"]["time_steps"], *_finetune_cells(r)] for r in used]
    return markdown(rows, ["network", "T", *FINETUNE_COLUMNS]), used


def conversion_zero_shot(rs: Sequence[dict]) -> "tuple[str, list[dict]]":
    """Every zero-shot measurement: one row per network, T and V(0), one column per calibration."""
    used = [r for r in records.latest_each(rs, KIND, _key).values() if r["config"]["step"] == "zero_shot"]
    rows = []
    for r in used:
        c, f = r["config"], r["figures"]
        for v0 in sorted({row.get("initial_potential") or 0.0 for row in f["rows"] if row["method"] != "ann"}):
            row = {"network": c["name"], "T": c["time_steps"], "V(0)": f"{v0:g}θ",
                   "ANN": f"{f['ann_error']:.2f}%"}
            for x in f["rows"]:
                if x["method"] != "ann" and (x.get("initial_potential") or 0.0) == v0:
                    column = "θ = 1" if x["method"] == "converted" else f"p{x['percentile']:g}"
                    row[column] = f"{x['val_error']:.2f}%"
            rows.append(row)
    return markdown(rows), used


def conversion(rs: Sequence[dict]) -> "tuple[str, list[dict]]":
    """Per network and T: ANN, converted (no training), calibrated, fine-tuned."""
    latest = records.latest_each(rs, KIND, _key)
    rows, used = [], []
    for (name, t, step, _), r in latest.items():
        if step != "zero_shot":
            continue
        used.append(r)
        by = {_label(row): row["val_error"] for row in r["figures"]["rows"]}
        tuned = {s: latest.get((name, t, "finetune", s)) for s in ("all", "progressive")}
        used += [x for x in tuned.values() if x]
        ref = next((x for x in tuned.values() if x), None)
        chosen = ref and f"calibrated p{ref['config']['percentile']:g}"
        v0 = ref and ref["config"]["initial_potential"]

        def cell(label):
            return "-" if label not in by else f"{by[label]:.2f}%"

        def tuned_cell(x):
            if not x:
                return "-"
            f = x["figures"]
            return f"**{f['val_error']:.2f}%** ({f['examples_seen'] / 45000:.1f} epochs, {_minutes(f['train_wall_s'])})"
        rows.append([name, t, cell("ANN"), cell("converted, θ=1"),
                     cell(chosen) if chosen else "-",
                     cell(f"{chosen}, V(0)={v0:g}θ") if chosen and v0 else "-",
                     tuned_cell(tuned["all"]), tuned_cell(tuned["progressive"])])
    return markdown(rows, ["network", "T", "ReLU ANN", "converted (θ=1)", "calibrated",
                           "calibrated, V(0)=θ/2", "fine-tuned, all at once", "fine-tuned, progressive"]), used


TABLES = {"conversion": conversion, "conversion_zero_shot": conversion_zero_shot,
          "conversion_finetune": conversion_finetune}
