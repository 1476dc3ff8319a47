"""Regenerates the results tables of the docs from the records (``bench.records``).

    python -m bench.tables            # rewrite every table in place
    python -m bench.tables --check    # exit 1 and name the tables that are out of date

A table in a Markdown file is the text between ``<!-- table:NAME -->`` and
``<!-- /table -->``; :data:`TABLES` says how each NAME is made and from which record(s),
and every generated table ends with a line citing them (kind, date, commit). Text
outside the markers is left alone.

Example:
  >>> render("a\\n<!-- table:x -->\\nold\\n<!-- /table -->\\nb", {"x": lambda rs: ("new", [])}, [])
  'a\\n<!-- table:x -->\\nnew\\n<!-- /table -->\\nb'
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, Mapping, Sequence

from bench import records
from bench.cifar10_findings import findings_table, runs_table

DOCS = ("bench/RESULTS.md", "bench/README_reproduce.md")
MARKER = re.compile(r"(<!-- table:([\w.-]+) -->\n)(.*?)(<!-- /table -->)", re.S)
Table = Callable[[Sequence[dict]], "tuple[str, list[dict]]"]


def _one(rs: Sequence[dict], kind: str, converted_from: str | None = None, **config: Any) -> dict:
    """The latest record of ``kind`` with ``config`` (or converted from that file)."""
    found = [r for r in records.select(rs, kind, **config)
             if converted_from is None or r.get("converted_from") == converted_from]
    if not found:
        raise LookupError(f"no {kind} record with {config or converted_from}")
    return found[-1]


def _f(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def reproduction(budget: str, part: str, **config: Any) -> Table:
    """The findings or the run list of the latest ``reproduce_cifar10`` record of ``budget``."""
    def make(rs):
        r = _one(rs, "reproduce_cifar10", budget=budget, **config)
        results = dict(r["figures"], config=r["config"])
        return (findings_table if part == "findings" else runs_table)(results), [r]
    return make


BOUND = {"tandem": "bound_shared", "bptt": "bound_bptt"}  # the ANN is the reference


def train_step(source: str) -> Table:
    """Every configuration of a ``bench.train_step`` record: images/s, wall and CPU s per
    step (medians), tandem or BPTT over ANN (wall, CPU), the compute bound."""
    def make(rs):
        r = _one(rs, "train_step", converted_from=source)
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


def memory(*sources: str) -> Table:
    """``bench.memory`` rows (several records merged): allocator step peak and RSS, and
    their growth from the smallest T of the same mode."""
    def make(rs):
        used = [_one(rs, "memory", converted_from=s) for s in sources]
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


def inference(source: str) -> Table:
    """``bench.inference``: SNN and ANN images/s per T and the SNN/ANN time ratio."""
    def make(rs):
        r = _one(rs, "inference", converted_from=source)
        by = {(row["T"], row["model"]): row for row in r["figures"]["rows"]}
        lines = ["| T | SNN img/s | ANN img/s | SNN time / ANN time |", "|---|---|---|---|"]
        for t in sorted({t for t, _ in by}):
            snn, ann = by[(t, "snn")], by[(t, "ann")]
            lines.append(f"| {t} | {snn['images_per_s']:.1f} | {ann['images_per_s']:.1f} | "
                         f"{snn['time_over_ann']:.2f} |")
        return "\n".join(lines), [r]
    return make


def digits(source: str) -> Table:
    """``bench.digits_precision``: SNN test accuracy per seed and policy, and the mean."""
    def make(rs):
        r = _one(rs, "digits_precision", converted_from=source)
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


SMALL = dict(train_size=10000, val_size=5000, epochs=2, time_steps=4, width_divisor=8)
TABLES: dict[str, Table] = {
    "reproduce_small_findings": reproduction("small", "findings", **SMALL),
    "reproduce_small_runs": reproduction("small", "runs", **SMALL),
    "train_step_T_sweep": train_step("bench/results/train_step_cifarnet_T1_4_16.json"),
    "train_step_w4": train_step("bench/results/train_step_cifarnet_w4.json"),
    "memory_w4": memory("bench/results/memory_cifarnet_w4.json"),
    "memory_full": memory("bench/results/memory_cifarnet.json",
                          "bench/results/memory_cifarnet_tandem_T32.json"),
    "digits_precision": digits("bench/results/digits_precision.json"),
    "inference_cifarnet": inference("bench/results/inference_cifarnet.json"),
}


def render(text: str, tables: Mapping[str, Table], rs: Sequence[dict]) -> str:
    """``text`` with every marked table regenerated (an unknown NAME is a ``KeyError``)."""
    def replace(match: re.Match) -> str:
        name = match.group(2)
        if name not in tables:
            raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(tables))}")
        body, used = tables[name](rs)
        cited = "; ".join(records.cite(r) for r in used)
        return match.group(1) + body + ("\n\nRecord: " + cited if cited else "") + "\n" + match.group(4)
    return MARKER.sub(replace, text)


def main(argv: Sequence[str]) -> int:
    check = "--check" in argv[1:]
    rs = records.read()
    stale = []
    for doc in DOCS:
        path = os.path.join(records.ROOT, doc)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = render(text, TABLES, rs)
        if new != text:
            stale.append(doc)
            if not check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)
    verb = "out of date" if check else "regenerated"
    print(f"{verb}: {', '.join(stale)}" if stale else "every table is up to date")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
