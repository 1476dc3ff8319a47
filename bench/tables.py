"""Regenerates the results tables of the docs from the records (``bench.records``).

    python -m bench.tables            # rewrite every table in place
    python -m bench.tables --check    # exit 1 and name the tables that are out of date

A table in a Markdown file is the text between ``<!-- table:NAME -->`` and
``<!-- /table -->``; :data:`TABLES` says how each NAME is made and from which record(s),
and every generated table ends with a line citing them (kind, date, commit). Text
outside the markers is left alone. A table maker takes every record and returns
``(markdown, records used)``; the reproduction's and the decoding studies' are here, the
performance ones in ``bench.tables_perf``. The Markdown is made by
:func:`bench.records.markdown` (pandas).

Example:
  >>> render("a\\n<!-- table:x -->\\nold\\n<!-- /table -->\\nb", {"x": lambda rs: ("new", [])}, [])
  'a\\n<!-- table:x -->\\nnew\\n<!-- /table -->\\nb'
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Mapping, Sequence

from bench import records, tables_convert, tables_perf
from bench.cifar10_findings import findings_table, runs_table
from bench.records import markdown, pct
from bench.tables_perf import Table, _f

DOCS = ("bench/RESULTS.md", "bench/README_reproduce.md", "README.md")
MARKER = re.compile(r"(<!-- table:([\w.-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


def reproduction(budget: str, part: str, **config: Any) -> Table:
    """The findings or the run list of the latest ``reproduce_cifar10`` record of ``budget``."""
    def make(rs):
        r = records.latest(rs, "reproduce_cifar10", budget=budget, **config)
        results = dict(r["figures"], config=r["config"])
        return (findings_table if part == "findings" else runs_table)(results), [r]
    return make


#: bench.spike_count_decoding's variants in table order, and how the table names them
SPIKE_COUNT_LABELS = {
    "membrane": "membrane decoding (reference)", "membrane_nodrop": "membrane decoding, no dropout",
    "paper": "spike count, the paper's", "tie": "paper's training, ties by final potential in the loss too",
    "scale": "(a) scale 10/T on the counts", "lscale": "(a) learned scale, init 10/T",
    "st": "(b) straight-through output coupling", "nodrop": "(c) no dropout before output",
    "st_nodrop": "(b) + (c)", "scale_st": "(a) + (b)", "scale_st_nodrop": "(a) + (b) + (c)"}
BUDGETS = ("tiny", "small", "medium", "full")


def _run_key(r: dict) -> tuple:
    """(budget, epochs, T, variant) of a spike-count study's record."""
    return r["config"]["budget"], r["config"]["epochs"], r["figures"]["time_steps"], r["figures"]["variant"]


def _rank(order: Sequence[str], name: str) -> tuple:
    return (list(order).index(name), "") if name in order else (len(order), name)


def spike_count_runs(rs: Sequence[dict]) -> list[dict]:
    """The latest ``spike_count_decoding`` record of every (budget, epochs, T, variant), in
    table order: budget (small before medium), epochs, T, then the variant order of
    :data:`SPIKE_COUNT_LABELS` (an unknown budget or variant after the known ones)."""
    def order(r):
        budget, epochs, t, variant = _run_key(r)
        return _rank(BUDGETS, budget), epochs, t, _rank(SPIKE_COUNT_LABELS, variant)
    return sorted(records.latest_each(rs, "spike_count_decoding", _run_key).values(), key=order)


def spike_count_decoding(rs: Sequence[dict]) -> "tuple[str, list[dict]]":
    """Validation errors of :func:`spike_count_runs` under both decision rules of a
    spike-count readout (``bench.spike_count_decoding``), one row per run."""
    def cell(v):
        return "-" if v is None else pct(v)

    used, rows = spike_count_runs(rs), []
    for r in used:
        (budget, epochs, t, variant), f = _run_key(r), r["figures"]
        val = f["val"]
        # every spike-count variant but paper predicts with the tie rule; paper's record has both
        membrane_rule = f.get("val_membrane_tie_rule_error",
                              val["error"] if "tie_fraction" in val and variant != "paper" else None)
        rows.append([f"{budget}, {epochs} ep", t, SPIKE_COUNT_LABELS.get(variant, variant), cell(val["error"]),
                     cell(val.get("error_count_index_rule")), cell(membrane_rule),
                     cell(val.get("tie_fraction")), cell(val.get("all_silent_fraction")),
                     f"{f['train_seconds']:.0f}"])
    return markdown(rows, ["budget", "T", "readout", "error (decision rule of the model)",
                           "count, ties to lower index", "count, ties by final potential", "ties",
                           "all outputs silent", "train s"]), used


def tie_rule_change(budget: str, epochs: int) -> Table:
    """Per T, membrane decoding against the paper's spike-count model under both decision
    rules (``spike_count_decoding`` records of ``budget`` / ``epochs``)."""
    def make(rs):
        runs = {(t, v): r for r in spike_count_runs(rs) for b, e, t, v in [_run_key(r)]
                if (b, e) == (budget, epochs)}
        rows, used = [], []
        for t in sorted({t for t, v in runs if v == "paper" and (t, "membrane") in runs}):
            membrane, paper = runs[(t, "membrane")], runs[(t, "paper")]
            m, i = 100 * membrane["figures"]["val"]["error"], 100 * paper["figures"]["val"]["error"]
            tie = 100 * paper["figures"]["val_membrane_tie_rule_error"]
            rows.append([t, f"{m:.2f}%", f"{i:.2f}%", f"{tie:.2f}%", f"**{tie - i:+.2f} points**",
                         f"**{tie - m:+.2f}**"])
            used += [membrane, paper]
        return markdown(rows, ["T", "membrane decoding", "paper's spike count (ties to lower index)",
                               "with the final-potential tie rule (`spike_count_tie`)", "change",
                               "gap to membrane"]), used
    return make


def spike_count_ceiling(rs: Sequence[dict]) -> "tuple[str, list[dict]]":
    """``bench.spike_count_ceiling``: one trained spike-count model's errors under the
    index rule, the final-potential rule and the ceiling of any tie rule (latest per
    budget, epochs, T and variant)."""
    latest = records.latest_each(rs, "spike_count_ceiling", _run_key)
    rows = []
    for (budget, epochs, t, variant), r in sorted(latest.items()):
        f = r["figures"]
        rows.append([f"{budget}, {epochs} ep", t, SPIKE_COUNT_LABELS.get(variant, variant),
                     pct(f["error_index_rule"]), pct(f["error_membrane_rule"]), f"**{pct(f['error_ceiling'])}**",
                     pct(f["tie_fraction"], 1), pct(f["true_class_at_top_count_fraction"], 1)])
    return markdown(rows, ["budget", "T", "readout", "ties to lower index", "ties by final potential",
                           "ceiling (ties to the true class)", "top count tied",
                           "true class at the top count"]), [r for _, r in sorted(latest.items())]


def trained_models(rs: Sequence[dict]) -> "tuple[str, list[dict]]":
    """One row per ``trained_model`` record (``bench.record_training``), latest per name:
    the run's recipe, the ``python -m eval`` errors of its SavedModel and where it is."""
    used, rows = list(records.latest_each(rs, "trained_model", lambda r: r["config"]["name"]).values()), []
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


SMALL = dict(train_size=10000, val_size=5000, epochs=2, time_steps=4, width_divisor=8)
MEDIUM = dict(train_size=45000, val_size=5000, epochs=3, time_steps=4, width_divisor=8)
TABLES: dict[str, Table] = {
    "reproduce_small_findings": reproduction("small", "findings", **SMALL),
    "reproduce_small_runs": reproduction("small", "runs", **SMALL),
    "reproduce_medium_findings": reproduction("medium", "findings", **MEDIUM),
    "reproduce_medium_runs": reproduction("medium", "runs", **MEDIUM),
    "spike_count_decoding": spike_count_decoding,
    "trained_models": trained_models,
    "spike_count_ceiling": spike_count_ceiling,
    "spike_count_tie_rule_medium": tie_rule_change("medium", 6),
    **tables_perf.TABLES,
    **tables_convert.TABLES,
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
