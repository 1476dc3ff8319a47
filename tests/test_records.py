"""bench.records (the results records) and bench.tables (the docs' tables made from them)."""
import json
import os
import platform
import subprocess

import pytest

from bench import records, tables

FIELDS = {"schema", "kind", "command", "config", "commit", "dirty", "versions", "machine",
          "date_utc", "figures"}


def _git(*args):
    out = subprocess.run(["git", *args], cwd=records.ROOT, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def test_a_written_record_has_every_field_and_says_how_it_was_made(tmp_path):
    path = str(tmp_path / "r.jsonl")
    first = records.write("unit", {"error": 0.25, "nan": float("nan")}, {"T": 4}, path=path)
    records.write("unit", {"error": 0.5}, {"T": 8}, path=path)
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2 and json.loads(lines[0]) == first  # appended, one object a line
    assert set(first) == FIELDS
    assert first["schema"] == "tandem_keras.record/1" and first["kind"] == "unit"
    assert first["config"] == {"T": 4} and first["figures"] == {"error": 0.25, "nan": None}
    head = _git("rev-parse", "HEAD")
    if head is None:
        pytest.skip("not a git checkout")
    assert first["commit"] == head
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    assert first["dirty"] is dirty
    import keras
    import numpy as np
    import tensorflow as tf

    import tandem_keras

    assert first["versions"] == {"python": platform.python_version(), "tensorflow": tf.__version__,
                                 "keras": keras.__version__, "numpy": np.__version__,
                                 "tandem_keras": tandem_keras.__version__}
    assert first["machine"]["cores"] == os.cpu_count()
    assert first["command"].startswith("python -m ")
    assert [r["config"]["T"] for r in records.select(records.read(path), "unit")] == [4, 8]


def test_bad_records_are_refused(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        records.make("", {})
    with pytest.raises(ValueError, match="unknown record fields: colour"):
        records.make("unit", {}, colour="red")
    record = records.make("unit", {})
    del record["machine"]
    with pytest.raises(ValueError, match="lacks machine"):
        records.append(record, str(tmp_path / "r.jsonl"))
    assert not os.path.exists(tmp_path / "r.jsonl")


def test_committed_records_follow_the_schema():
    committed = records.read()
    assert committed, "bench/results/records.jsonl is empty"
    for record in committed:
        records.check(record)
        assert set(record) - FIELDS <= {"converted_from", "note"}
        if record["commit"] is None:  # provenance unknown: never guessed, always said
            assert record["converted_from"].startswith("bench/results/")


def test_the_docs_tables_are_generated_from_the_records():
    """Regenerating the docs' tables from the committed records changes nothing
    (run `python -m bench.tables` after adding a record)."""
    committed = records.read()
    used = set()
    for doc in tables.DOCS:
        with open(os.path.join(records.ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        used |= {m.group(2) for m in tables.MARKER.finditer(text)}
        assert tables.render(text, tables.TABLES, committed) == text, f"{doc}: python -m bench.tables"
    assert used == set(tables.TABLES)


def test_render_cites_the_record_and_keeps_the_text_around():
    record = records.make("unit", {"x": 1})
    text = "intro\n<!-- table:t -->\nstale\n<!-- /table -->\nafter\n"
    out = tables.render(text, {"t": lambda rs: ("| x |\n|---|\n| 1 |", rs)}, [record])
    assert out.startswith("intro\n<!-- table:t -->\n| x |") and out.endswith("<!-- /table -->\nafter\n")
    assert f"Record: `unit`, {record['date_utc']}" in out
    with pytest.raises(KeyError, match="unknown table 'u'"):
        tables.render("<!-- table:u -->\n<!-- /table -->", {}, [])


def _spike_count_record(budget, epochs, t, variant, date, error):
    figures = {"variant": variant, "time_steps": t, "train_seconds": 10.0, "val": {"error": error}}
    if variant != "membrane":
        figures["val"].update(error_count_index_rule=0.7, tie_fraction=0.5, all_silent_fraction=0.01)
    return {"kind": "spike_count_decoding", "config": {"budget": budget, "epochs": epochs},
            "date_utc": date, "commit": None, "figures": figures}


def test_the_spike_count_table_has_the_latest_run_of_each_budget_epochs_t_and_variant():
    rs = [_spike_count_record("medium", 6, 4, "membrane", "2026-11-29T10:00:00Z", 0.40),
          _spike_count_record("small", 2, 4, "st", "2026-11-29T12:00:00Z", 0.60),
          _spike_count_record("small", 2, 10, "membrane", "2026-11-29T10:00:00Z", 0.56),
          _spike_count_record("small", 2, 4, "st", "2026-11-29T13:00:00Z", 0.55),  # rerun: used
          _spike_count_record("small", 2, 4, "membrane", "2026-11-29T10:00:00Z", 0.57),
          _spike_count_record("small", 2, 4, "new_idea", "2026-11-29T10:00:00Z", 0.58),
          _spike_count_record("small", 2, 4, "st", "2026-11-29T11:00:00Z", 0.65),  # older, written last
          {"kind": "train_step", "config": {}, "date_utc": "2026-11-29T14:00:00Z", "figures": {}}]
    body, used = tables.spike_count_decoding(rs)
    assert [rs.index(r) for r in used] == [4, 3, 5, 2, 0]  # small, then T, then the variant order
    rows = [line.split(" | ") for line in body.splitlines()[2:]]
    assert [row[:4] for row in rows] == [
        ["| small, 2 ep", "4", "membrane decoding (reference)", "57.00%"],
        ["| small, 2 ep", "4", "(b) straight-through output coupling", "55.00%"],
        ["| small, 2 ep", "4", "new_idea", "58.00%"],
        ["| small, 2 ep", "10", "membrane decoding (reference)", "56.00%"],
        ["| medium, 6 ep", "4", "membrane decoding (reference)", "40.00%"]]
    assert rows[1][4:] == ["70.00%", "55.00%", "50.00%", "1.00%", "10 |"]  # st's own rule: ties by V


def test_the_spike_count_table_knows_every_variant_of_the_benchmark():
    from bench import spike_count_decoding as scd

    assert list(tables.SPIKE_COUNT_LABELS) == [*scd.MEMBRANE, *scd.VARIANTS]
