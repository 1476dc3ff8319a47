"""The tables of issue 28's ``accuracy_study`` records (``bench.accuracy_study``).

* :func:`study`: per network and T, one row per way of training (the latest record of each):
  its budget, the validation error after the last epoch, the best epoch, the error of the
  same weights in the other modes, and the error after every epoch (the curve that tells a
  slower convergence from a higher plateau).
* :func:`study_record_table`: one record, as the program prints it.

Example:
  >>> r = {"config": {"network": "net", "time_steps": 4, "row": "tandem", "mode": "tandem",
  ...                 "initial_potential": 0.5, "init_from": "", "distill": "", "width_divisor": 1},
  ...      "figures": {"val_error": 20.0, "epochs": 2, "steps": 1406, "train_wall_s": 600.0,
  ...                  "start_error": 90.0, "modes": {"quantized": 25.0},
  ...                  "per_epoch": [{"epoch": 1, "val_error": 30.0}, {"epoch": 2, "val_error": 20.0}]}}
  >>> print(study_record_table(r))
  | network   | T   | row    | training                   | budget                   | error      | best           | other modes      | per epoch   |
  |-----------|-----|--------|----------------------------|--------------------------|------------|----------------|------------------|-------------|
  | net       | 4   | tandem | tandem, V(0)=0.5θ, scratch | 2 epochs x 703, 10.0 min | **20.00%** | 20.00% (ep. 2) | quantized 25.00% | 30.0, 20.0  |
"""
from __future__ import annotations

import os
from typing import Sequence

from bench import records
from bench.records import markdown

KIND = "accuracy_study"
COLUMNS = ["network", "T", "row", "training", "budget", "error", "best", "other modes", "per epoch"]


def _network(r: dict) -> str:
    c = r["config"]
    if c.get("init_from"):
        return r["figures"].get("network", c["network"])
    w = c.get("width_divisor") or 1
    return c["network"] + (f" / {w}" if w > 1 else "")


def _training(c: dict) -> str:
    if c.get("start_from"):
        return f"{c['mode']}, from {os.path.basename(os.path.normpath(c['start_from']))}"
    start = f"converted from {os.path.basename(os.path.normpath(c['init_from']))}, p{c['percentile']:g}" \
        if c.get("init_from") else "scratch"
    v0 = f"V(0)={c['initial_potential']:g}θ"
    if c.get("rounding") is not None and c["rounding"] != c["initial_potential"]:
        v0 += f" + {c['rounding'] - c['initial_potential']:g}θ bias"
    parts = [c["mode"], v0, start]
    if c.get("distill"):
        parts.append(f"distilled (α={c['alpha']:g}, τ={c['temperature']:g})")
    return ", ".join(parts)


def _cells(r: dict) -> list:
    c, f = r["config"], r["figures"]
    curve = f["per_epoch"]
    best = min(curve, key=lambda e: e["val_error"])
    steps = f["steps"] // max(f["epochs"], 1)
    budget = f"{f['epochs']} epochs x {steps}, {f['train_wall_s'] / 60:.1f} min"
    others = ", ".join(f"{m} {e:.2f}%" for m, e in f.get("modes", {}).items())
    return [_network(r), c["time_steps"], c["row"], _training(c), budget, f"**{f['val_error']:.2f}%**",
            f"{best['val_error']:.2f}% (ep. {best['epoch']})", others or "-",
            ", ".join(f"{e['val_error']:.1f}" for e in curve)]


def study_record_table(r: dict) -> str:
    return markdown([_cells(r)], COLUMNS)


def _key(r: dict) -> tuple:
    c = r["config"]
    return _network(r), c["time_steps"], c["row"]


def study(rs: Sequence[dict], network: str = "") -> "tuple[str, list[dict]]":
    """The latest record of every (network, T, row), in the order they were first made."""
    latest = records.latest_each([r for r in rs if r["kind"] == KIND], _key)
    used = [r for r in latest.values() if not network or _network(r) == network]
    return markdown([_cells(r) for r in used], COLUMNS), used
