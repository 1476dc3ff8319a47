"""bench.records (the results records, read with pandas) and bench.tables (the docs' tables made from them)."""
import json
import os
import platform
import subprocess

import pytest

from bench import records, tables

FIELDS = {"schema", "kind", "command", "config", "commit", "dirty", "versions", "machine",
          "date_utc", "figures"}


def cells(table):
    """The body rows of a Markdown table as lists of cell texts (the header and rule dropped)."""
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in table.splitlines()[2:]]


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
    assert records.of(records.read(path), "unit")[0] == first  # read back by pandas, as written
    assert set(first) == FIELDS
    assert first["schema"] == "tandem_keras.record/1" and first["kind"] == "unit"
    assert first["config"] == {"T": 4} and first["figures"] == {"error": 0.25, "nan": None}
    head = _git("rev-parse", "HEAD")
    if head is None:
        pytest.skip("not a git checkout")
    assert first["commit"] == head
    changed = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()]
    assert first["dirty"] is any(not p.startswith(records.OUTPUTS) for p in changed)
    import keras
    import numpy as np
    import tensorflow as tf

    import tandem_keras

    assert first["versions"] == {"python": platform.python_version(), "tensorflow": tf.__version__,
                                 "keras": keras.__version__, "numpy": np.__version__,
                                 "tandem_keras": tandem_keras.__version__}
    assert first["machine"]["cores"] == os.cpu_count()
    assert first["command"].startswith("python -m ")
    assert [r["config"]["T"] for r in records.of(records.read(path), "unit")] == [4, 8]
    assert records.of(records.read(path), "unit", T=8)[0]["figures"] == {"error": 0.5}


def test_a_record_says_which_tensorflow_variables_were_set(monkeypatch):
    for name in records.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("SOME_OTHER_VARIABLE", "x")
    assert records.write("unit", {}, path=None)["machine"]["environment"] == {
        "TF_ENABLE_ONEDNN_OPTS": "1", "OMP_NUM_THREADS": "2"}
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert records.write("unit", {}, path=None)["machine"]["environment"] == {}


def test_bad_records_are_refused(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        records.write("", {}, path=str(tmp_path / "r.jsonl"))
    with pytest.raises(ValueError, match="unknown record fields: colour"):
        records.write("unit", {}, path=str(tmp_path / "r.jsonl"), colour="red")
    assert not os.path.exists(tmp_path / "r.jsonl")


def test_committed_records_follow_the_schema():
    with open(records.RECORDS, encoding="utf-8") as f:
        committed = [json.loads(line) for line in f if line.strip()]
    assert committed, "bench/results/records.jsonl is empty"
    assert sum(len(records.of(records.read(), kind)) for kind in {r["kind"] for r in committed}) == len(committed)
    for record in committed:
        assert FIELDS <= set(record) and set(record) - FIELDS <= {"converted_from", "note"}, record["kind"]
        assert record["schema"] == "tandem_keras.record/1"
        assert all(isinstance(record[k], dict) for k in ("config", "versions", "machine", "figures"))
        if record["commit"] is None:  # provenance unknown: never guessed, always said
            assert record["converted_from"].startswith("bench/results/")


def test_the_docs_tables_are_generated_from_the_records():
    """Regenerating the docs' tables from the committed records changes nothing
    (run `python -m bench.tables` after adding a record)."""
    committed = records.read()
    used = set()
    for doc in records.DOCS:
        with open(os.path.join(records.ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        used |= {m.group(2) for m in records.MARKER.finditer(text)}
        assert records.render(text, tables.TABLES, committed) == text, f"{doc}: python -m bench.tables"
    assert used == set(tables.TABLES)


def test_render_cites_the_record_and_keeps_the_text_around():
    record = records.write("unit", {"x": 1}, path=None)
    text = "intro\n<!-- table:t -->\nstale\n<!-- /table -->\nafter\n"
    out = records.render(text, {"t": lambda rs: ("| x |\n|---|\n| 1 |", rs)}, [record])
    assert out.startswith("intro\n<!-- table:t -->\n| x |") and out.endswith("<!-- /table -->\nafter\n")
    assert f"Record: `unit`, {record['date_utc']}" in out
    with pytest.raises(KeyError, match="unknown table 'u'"):
        records.render("<!-- table:u -->\n<!-- /table -->", {}, [])


def _study_record(network, t, row, date, error, **config):
    config = {"network": network, "time_steps": t, "row": row, "mode": "tandem",
              "initial_potential": 0.5, "init_from": "", "distill": "", **config}
    figures = {"val_error": error, "epochs": 2, "steps": 20, "train_wall_s": 60.0, "modes": {},
               "per_epoch": [{"epoch": 1, "val_error": error + 5}, {"epoch": 2, "val_error": error}]}
    return {"kind": "accuracy_study", "config": config, "date_utc": date, "commit": None,
            "figures": figures}


def test_the_study_table_has_the_latest_run_of_each_network_t_and_row():
    rs = [_study_record("resnet20", 4, "tandem", "2026-12-06T10:00:00Z", 40.0),
          _study_record("resnet20", 4, "ann", "2026-12-06T12:00:00Z", 30.0, mode="ann"),
          _study_record("resnet20", 4, "tandem", "2026-12-06T13:00:00Z", 35.0),  # rerun: used
          _study_record("vgg11", 4, "tandem", "2026-12-06T10:00:00Z", 50.0, width_divisor=2),
          _study_record("resnet20", 4, "tandem", "2026-12-06T11:00:00Z", 45.0),  # older, written last
          {"kind": "train_step", "config": {}, "date_utc": "2026-12-06T14:00:00Z", "figures": {}}]
    body, used = tables.study(rs)
    assert [rs.index(r) for r in used] == [2, 1, 3]  # in the order each key first appears
    assert [row[:7] for row in cells(body)] == [
        ["resnet20", "4", "tandem", "tandem, V(0)=0.5θ, scratch", "2 epochs x 10, 1.0 min",
         "**35.00%**", "35.00% (ep. 2)"],
        ["resnet20", "4", "ann", "ann, V(0)=0.5θ, scratch", "2 epochs x 10, 1.0 min",
         "**30.00%**", "30.00% (ep. 2)"],
        ["vgg11 / 2", "4", "tandem", "tandem, V(0)=0.5θ, scratch", "2 epochs x 10, 1.0 min",
         "**50.00%**", "50.00% (ep. 2)"]]
    assert [r["config"]["network"] for r in tables.study(rs, network="vgg11 / 2")[1]] == ["vgg11"]


def test_a_training_run_becomes_a_trained_model_record_and_a_table_row(tmp_path):
    from bench import record_model

    run, export = tmp_path / "run", tmp_path / "bench" / "models" / "w4"
    (export / "variables").mkdir(parents=True)
    (export / "variables" / "variables.data").write_bytes(b"\0" * 2048)
    (export / "model.keras").write_bytes(b"\0" * 100)
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "model": "cifarnet", "width_divisor": 4, "mode": "tandem", "time_steps": 4,
        "mixed_precision": "mixed_bfloat16", "epochs": 2}))
    (run / "history.csv").write_text("epoch,loss,val_top1\n0,1.5,0.5\n1,1.2,0.625\n")
    (tmp_path / "eval.json").write_text(json.dumps({
        "saved_model": str(export), "examples": 5000, "top1_error": 37.5, "top5_error": 4.25,
        "synops_ratio": 0.153, "split": "validation", "layers": []}))
    out = str(tmp_path / "records.jsonl")
    record = record_model.record("w4", str(export), str(tmp_path / "eval.json"), str(run), "python -m train --epochs=2",
                                 "2026-11-29T13:00:00Z", "2026-11-29T13:30:00Z", "a" * 40, out=out)
    assert records.of(records.read(out), "trained_model") == [record]
    assert record["command"] == "python -m train --epochs=2" and record["commit"] == "a" * 40
    assert record["config"]["name"] == "w4" and "layers" not in record["figures"]
    figures = record["figures"]
    assert figures["train_wall_seconds"] == 1800.0 and figures["saved_model_bytes"] == 2048
    assert figures["keras_file_bytes"] == 100
    assert [e["val_top1"] for e in figures["per_epoch"]] == [0.5, 0.625]
    older = dict(record, figures=dict(figures, top1_error=99.0))
    text, used = tables.trained_models([older, record])  # the latest record of a name wins
    assert used == [record]
    [row] = cells(text)
    assert row[6:] == ["**37.50%** (validation, 5000 images)", "4.25%", "0.153", "30 min", "not committed"]


def test_dirty_means_code_differs_not_results(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "records.jsonl").write_text("")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    monkeypatch.setattr(records, "ROOT", str(tmp_path))
    records.write("unit", {}, path=str(tmp_path / "bench" / "results" / "records.jsonl"))
    sha, dirty = records.commit()
    assert len(sha) == 40 and dirty is False  # its own record does not make a run dirty
    (tmp_path / "code.py").write_text("x = 2\n")
    assert records.commit() == (sha, True)


def test_a_train_step_table_shows_the_library_bound_per_mode_and_a_failed_mode():
    common = {"network": "cifarnet_w4", "policy": "float32", "jit": True, "T": 4, "batch": 32,
              "bound_shared": 1.9876, "bound_bptt": 3.9612, "bound_issue": 2.5}
    rows = [dict(common, mode="tandem", images_per_s=94.94, median_s=0.337, median_cpu_s=0.2251,
                 ratio_to_ann=1.7849, cpu_ratio_to_ann=1.9),
            dict(common, mode="ann", images_per_s=169.2, median_s=0.189, median_cpu_s=0.1186,
                 ratio_to_ann=1.0, cpu_ratio_to_ann=1.0),
            dict(common, mode="bptt", error="XlaRuntimeError: unsupported op")]
    table = tables.train_step_table({"figures": {"rows": rows}})
    assert [c.strip() for c in table.splitlines()[0].strip("|").split("|")][-2:] == ["bound (library)", "error"]
    assert cells(table) == [
        ["cifarnet_w4", "float32", "1", "4", "tandem", "94.9", "0.34", "0.23", "1.78", "1.90", "1.99", ""],
        ["cifarnet_w4", "float32", "1", "4", "ann", "169.2", "0.19", "0.12", "1.00", "1.00", "", ""],
        ["cifarnet_w4", "float32", "1", "4", "bptt", "", "", "", "", "", "3.96", "XlaRuntimeError: unsupported op"]]
    without_error = tables.train_step_table({"figures": {"rows": rows[:2]}})
    assert "error" not in without_error and len(cells(without_error)[0]) == 11


def test_the_input_checks_table_has_the_quartiles_of_both_checked_variants():
    row = {"T": 10, "assert_ops": {"shipped": 2, "every_layer": 6, "unchecked": 0},
           "shipped_over_unchecked_wall_q25_q50_q75": [0.99, 1.004, 1.0261],
           "shipped_over_unchecked_cpu_q25_q50_q75": [0.98, 1.0, 1.01],
           "every_layer_over_unchecked_wall_q25_q50_q75": [1.05, 1.08, 1.1],
           "every_layer_over_unchecked_cpu_q25_q50_q75": [1.04, 1.07, 1.09]}
    assert cells(tables.input_checks_table({"figures": {"rows": [row]}})) == [
        ["10", "shipped", "2", "0.990 / 1.004 / 1.026", "0.980 / 1.000 / 1.010"],
        ["10", "every_layer", "6", "1.050 / 1.080 / 1.100", "1.040 / 1.070 / 1.090"]]


def test_check_fails_on_a_stale_table_and_a_run_without_it_rewrites_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "bench" / "results").mkdir(parents=True)
    record = records.write("unit", {"x": 1}, path=str(tmp_path / "bench" / "results" / "records.jsonl"))
    doc = tmp_path / "doc.md"
    doc.write_text("text\n<!-- table:t -->\nstale\n<!-- /table -->\n")
    monkeypatch.setattr(records, "ROOT", str(tmp_path))
    monkeypatch.setattr(records, "RECORDS", str(tmp_path / "bench" / "results" / "records.jsonl"))
    monkeypatch.setattr(records, "DOCS", ("doc.md",))
    made = {"t": lambda rs: (f"| x |\n|---|\n| {records.of(rs, 'unit')[0]['figures']['x']} |", records.of(rs, "unit"))}
    assert records.regenerate(made, check_only=True) == 1 and "out of date: doc.md" in capsys.readouterr().out
    assert "stale" in doc.read_text()  # --check writes nothing
    assert records.regenerate(made, check_only=False) == 0
    assert doc.read_text() == (f"text\n<!-- table:t -->\n| x |\n|---|\n| 1 |\n\nRecord: {records.cite(record)}\n"
                               "<!-- /table -->\n")
    assert records.regenerate(made, check_only=True) == 0


@pytest.mark.slow
def test_a_committed_export_copy_has_an_uncompiled_keras_file_and_its_metadata(tmp_path):
    """bench.record_model --step=copy: the copy evaluates as the source does, its model.keras
    holds no optimizer state, and it keeps what the export recorded of its training folder."""
    import keras
    import numpy as np
    import tensorflow as tf

    import models
    from bench import record_model
    from common import datasets
    from tandem_keras.saved_model import load_metadata
    from train.export import export

    folder = tmp_path / "my_images"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(2):
            keras.utils.save_img(str(folder / c / f"{i}.png"), np.full((8, 8, 1), 40 * i + 10, "uint8"))
    model = models.digits(time_steps=2)
    model.compile("adam", "sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype("float32")
    model.fit(images, np.arange(4) % 10, epochs=1, verbose=0)   # optimizer state exists
    source, copy = str(tmp_path / "run" / "export"), str(tmp_path / "committed")
    export(model, source, training={"validation_split": 0.1},
           source=datasets.load(f"folder:{folder}", image_size=8, validation_split=0.0))
    record_model.copy(source, copy)
    assert getattr(keras.models.load_model(os.path.join(source, "model.keras")), "optimizer", None) is not None
    assert getattr(keras.models.load_model(os.path.join(copy, "model.keras")), "optimizer", None) is None
    served = tf.saved_model.load(copy)   # kept alive while serving (its variables)
    np.testing.assert_allclose(np.asarray(served.serve(images)),
                               np.asarray(model(images, training=False)), rtol=1e-5, atol=1e-5)
    training = load_metadata(copy)["training"]
    assert training == load_metadata(source)["training"] and str(tmp_path) not in json.dumps(training)
    assert training["dataset"] == "folder:my_images" and training["folder_files"] == 4
    assert 0 < record_model.export_bytes(copy) < sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(copy) for f in fs)


def test_a_model_trained_further_by_the_study_takes_its_record(tmp_path):
    from bench import record_model

    out, export, run = str(tmp_path / "records.jsonl"), tmp_path / "models" / "x", tmp_path / "run"
    export.mkdir(parents=True)
    run.mkdir()
    study = records.write("accuracy_study", {"val_error": 16.0, "train_wall_s": 600.0, "train_cpu_s": 900.0},
                          {"network": "cifarnet", "time_steps": 4, "epochs": 8, "start_from": "/runs/a/export",
                           "export_dir": "/runs/b/export"}, path=out, command="python -m bench.accuracy_study")
    (tmp_path / "eval.json").write_text(json.dumps({"saved_model": str(export), "top1_error": 16.0, "top5_error": 0.5,
                                                    "split": "validation"}))
    record = record_model.record("x", str(export), str(tmp_path / "eval.json"), str(run),
                                 finetune_export="/runs/b/export", out=out)
    assert record["command"] == "python -m bench.accuracy_study" and record["commit"] == study["commit"]
    assert record["config"]["epochs"] == 8 and record["config"]["init_from"] == "/runs/a/export"
    assert tables.trained_models([record])[0].splitlines()[2].split(" | ")[3].strip() == "from a"
    assert record["figures"]["train_wall_seconds"] == 600.0 and record["figures"]["top1_error"] == 16.0
    with pytest.raises(SystemExit):
        record_model.record("x", str(export), str(tmp_path / "eval.json"), str(run),
                            finetune_export="/nowhere", out=out)
