"""Exports are atomic, and python -m eval refuses an incomplete one.

The earlier good export survives a failure while writing (a full disk, ``ulimit -f``),
SIGINT or SIGTERM during the export of a resumed run; a first run killed right after
``saved_model.pb`` leaves no export; exports damaged or left half-written by older code
are refused in one line. Checked on the bytes of every file, and by evaluating.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras import _atomic, export
from tests._train_helpers import ROOT
from train import export as train_export

DIGITS = ["--model=digits", "--dataset=digits", "--time_steps=2", "--batch_size=256"]


def _snapshot(directory):
    """{relative path: bytes} of every file under ``directory``."""
    return {os.path.relpath(os.path.join(root, name), directory):
            open(os.path.join(root, name), "rb").read()
            for root, _, names in os.walk(directory) for name in names}


def _leftovers(parent):
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


def _model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3),
                             tk.SpikeEncoder(2, name="enc"), tk.TimeFlatten(),
                             tk.TandemDense(4, name="td"), tk.SpikeCount(),
                             keras.layers.Dense(3, name="logits")])


def _write(new, **files):
    """Writes ``files`` into ``new`` and a manifest of them (``manifest.json``)."""
    for name, text in files.items():
        open(os.path.join(new, name), "w").write(text)
    with open(os.path.join(new, "manifest.json"), "w") as f:
        json.dump({"files": {name: len(text) for name, text in files.items()}}, f)


def test_written_aside_replaces_or_keeps_whole(tmp_path):
    target = str(tmp_path / "export")
    with _atomic.written_aside(target, "manifest.json") as new:
        _write(new, a="first")
    first = _snapshot(target)
    with pytest.raises(OSError, match="disk full"):
        with _atomic.written_aside(target, "manifest.json") as new:
            open(os.path.join(new, "a"), "w").write("second, half")
            raise OSError("disk full")
    assert _snapshot(target) == first and _leftovers(tmp_path) == []
    with _atomic.written_aside(target, "manifest.json") as new:
        _write(new, b="second")
    assert set(_snapshot(target)) == {"b", "manifest.json"} and _leftovers(tmp_path) == []
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o777 & ~_atomic._umask())


@pytest.mark.parametrize("theirs, shown", [("notes.txt", "notes.txt"), ("data/x.csv", "data/"),
                                           ("variables/notes.txt", "variables/notes.txt"),
                                           ("empty_folder/", "empty_folder/")])
def test_written_aside_never_replaces_what_it_did_not_write(tmp_path, theirs, shown):
    """Beside an earlier output (its manifest lists its files) or in a directory of the
    user's, one file or folder not written here refuses the replacement, before and after
    the block; an empty directory is replaced."""
    target = tmp_path / "export"
    with _atomic.written_aside(str(target), "manifest.json") as new:
        os.mkdir(os.path.join(new, "variables"))
        _write(new, **{"a": "ours", "variables/v": "ours"})
    path = target / theirs
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir() if theirs.endswith("/") else path.write_text("mine")
    before = _snapshot(target)
    with pytest.raises(FileExistsError, match=f"not written there by an export \\({shown}\\): not replaced"):
        with _atomic.written_aside(str(target), "manifest.json") as new:
            raise AssertionError("nothing may be written")
    assert _snapshot(target) == before
    with pytest.raises(FileExistsError, match="not written there by an export"):
        with _atomic.written_aside(str(tmp_path / "other"), "manifest.json") as new:
            _write(new, a="new")
            (tmp_path / "other").mkdir()  # the user's folder appears meanwhile, with a file
            (tmp_path / "other" / "mine.txt").write_text("mine")
    assert _snapshot(tmp_path / "other") == {"mine.txt": b"mine"} and _leftovers(tmp_path) == []
    (tmp_path / "empty").mkdir()
    with _atomic.written_aside(str(tmp_path / "empty"), "manifest.json") as new:
        _write(new, a="new")
    assert set(_snapshot(tmp_path / "empty")) == {"a", "manifest.json"}


def test_export_model_keeps_the_users_files(tmp_path):
    """tk.export_model into a folder of the user's (a notes.txt, a data/ folder) is refused
    naming them; over its own earlier export it replaces it; over an earlier export with a
    file of the user's added, it is refused again. Nothing of the user's is lost."""
    folder = tmp_path / "mine"
    (folder / "data").mkdir(parents=True)
    (folder / "notes.txt").write_text("notes")
    (folder / "data" / "x.csv").write_text("1,2")
    with pytest.raises(FileExistsError) as error:
        tk.export_model(_model(0), str(folder))
    assert str(error.value) == (f"'{folder}' holds files that were not written there by an "
                                "export (data/, notes.txt): not replaced")
    assert _snapshot(folder) == {"notes.txt": b"notes", "data/x.csv": b"1,2"}
    target = tmp_path / "export"
    tk.export_model(_model(0), str(target))
    tk.export_model(_model(1), str(target))  # an earlier export of ours is replaced
    assert np.asarray(export.LoadedModel(str(target)).logits(np.ones((1, 8, 8, 1), "float32"))).shape == (1, 3)
    (target / "assets" / "notes.txt").write_text("mine")
    before = _snapshot(target)
    with pytest.raises(FileExistsError, match=r"\(assets/notes.txt\): not replaced"):
        tk.export_model(_model(2), str(target))
    assert _snapshot(target) == before and _leftovers(tmp_path) == []


def test_what_a_killed_writer_left_is_recovered(tmp_path):
    """SIGKILL between the two renames leaves the old export aside and none in place; one
    during writing leaves the new half. The next export restores / deletes them."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "export"
    aside = tmp_path / f".export.old-{dead.pid}"
    half = tmp_path / f".export.writing-{dead.pid}_abc"
    aside.mkdir()
    (aside / "a").write_text("earlier export")
    half.mkdir()
    (half / "saved_model.pb").write_text("half")
    _atomic._recover(str(target))
    assert _snapshot(target) == {"a": b"earlier export"} and _leftovers(tmp_path) == []


def test_failed_export_keeps_the_earlier_one(tmp_path, monkeypatch):
    target = str(tmp_path / "export")
    train_export.export(_model(0), target, training={"dataset": "digits"})
    before = _snapshot(target)

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", disk_full)
    with pytest.raises(train_export.ExportError) as error:
        train_export.export(_model(1), target, training={"dataset": "digits"})
    assert str(error.value) == (f"writing the export to {target} failed ([Errno 28] No space "
                                "left on device); the earlier export there is kept")
    assert _snapshot(target) == before and _leftovers(tmp_path) == []
    with pytest.raises(train_export.ExportError, match="; nothing was exported$"):
        train_export.export(_model(1), str(tmp_path / "new"), training={"dataset": "digits"})
    assert not os.path.exists(tmp_path / "new")


def _eval(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "eval", *args, "--noanalysis"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def complete_export(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("complete") / "export")
    train_export.export(_model(0), path, training={"dataset": "digits"})
    return path


def _damage(path, case):
    if case == "truncated_variables":
        data = os.path.join(path, "variables", "variables.data-00000-of-00001")
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
    elif case == "truncated_keras_file":
        with open(os.path.join(path, "model.keras"), "r+b") as f:
            f.truncate(100)
    elif case == "killed_after_saved_model_pb":  # what exports before this change left
        for name in ("assets", "model.keras", "fingerprint.pb"):
            target = os.path.join(path, name)
            shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    elif case == "truncated_metadata":
        meta = os.path.join(path, "assets", export.METADATA_FILE)
        with open(meta, "r+b") as f:
            f.truncate(50)


@pytest.mark.parametrize("case, words", [
    ("truncated_variables", ["incomplete export", "variables/variables.data-00000-of-00001 has"]),
    pytest.param("truncated_keras_file", ["incomplete export", "model.keras has 100 bytes"],
                 marks=pytest.mark.slow),
    ("killed_after_saved_model_pb", ["incomplete export", "'serve_activity' endpoint but no "
                                     "assets/tandem_keras.json"]),
    pytest.param("truncated_metadata", ["tandem_keras.json is not valid JSON", "damaged or incomplete"],
                 marks=pytest.mark.slow),
])
def test_eval_refuses_an_incomplete_export_in_one_line(complete_export, tmp_path, case, words):
    path = shutil.copytree(complete_export, tmp_path / "export")
    _damage(str(path), case)
    with pytest.raises(ValueError) as error:  # the library
        export.LoadedModel(str(path))
    for word in words:
        assert word in str(error.value), str(error.value)
    result = _eval(f"--saved_model={path}", "--dataset=digits")  # the program
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eval: error: ") and words[0] in lines[0], lines


def _train(model_dir, *args, env=None):
    full = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "train", *DIGITS, f"--model_dir={model_dir}",
                             *args], cwd=ROOT, env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(pattern, proc, timeout=600):
    """Polls until a file matching ``pattern`` exists (the export being written)."""
    end = time.time() + timeout
    while time.time() < end:
        found = glob.glob(pattern)
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.005)
    raise AssertionError(f"{pattern} never appeared")


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("atomic") / "run")
    proc = _train(model_dir, "--epochs=1")
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    return model_dir


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_the_export_of_a_resumed_run_keeps_the_earlier_export(one_epoch, tmp_path, sig):
    model_dir = str(shutil.copytree(one_epoch, tmp_path / "run"))
    before = _snapshot(os.path.join(model_dir, "export"))
    proc = _train(model_dir, "--epochs=2")
    _wait_for(os.path.join(model_dir, ".export.writing-*", "variables"), proc)
    proc.send_signal(sig)
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert _snapshot(os.path.join(model_dir, "export")) == before  # the epoch-1 export, whole
    assert not glob.glob(os.path.join(model_dir, ".export.old-*"))
    result = _eval(f"--saved_model={model_dir}/export", "--dataset=digits", "--split=test")
    assert result.returncode == 0 and "top-1 error" in result.stdout, result.stderr[-2000:]
    with open(os.path.join(model_dir, "export", "assets", "tandem_keras.json")) as f:
        assert json.load(f)["training"]["epochs"] == 1


@pytest.mark.slow
def test_first_run_killed_right_after_saved_model_pb_leaves_no_export(tmp_path):
    model_dir = str(tmp_path / "run")
    proc = _train(model_dir, "--epochs=1")
    _wait_for(os.path.join(model_dir, ".export.writing-*", "saved_model.pb"), proc)
    proc.kill()
    proc.communicate(timeout=300)
    assert not os.path.exists(os.path.join(model_dir, "export"))
    result = _eval(f"--saved_model={model_dir}/export", "--dataset=digits")
    assert result.returncode == 2
    assert result.stderr.strip() == f"eval: error: --saved_model '{model_dir}/export' is not a directory"


@pytest.mark.slow
def test_full_disk_while_re_exporting_a_finished_run_keeps_the_export(one_epoch, tmp_path):
    """``ulimit -f``: a file larger than the limit cannot be written (EFBIG)."""
    model_dir = str(shutil.copytree(one_epoch, tmp_path / "run"))
    before = _snapshot(os.path.join(model_dir, "export"))
    largest = max(len(blob) for blob in before.values())
    limit_kib = largest // 1024 // 2  # every other file of the run fits
    command = " ".join([sys.executable, "-m", "train", *DIGITS, "--epochs=1",
                        f"--model_dir={model_dir}"])
    result = subprocess.run(["bash", "-c", f"ulimit -f {limit_kib}; exec {command}"], cwd=ROOT,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("train: error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert errors[0].startswith(f"train: error: writing the export to {model_dir}/export failed (")
    assert "File too large" in errors[0] and errors[0].endswith("the earlier export there is kept")
    assert _snapshot(os.path.join(model_dir, "export")) == before
    assert not [n for n in os.listdir(model_dir) if n.startswith(".export")]
    model = export.LoadedModel(os.path.join(model_dir, "export"))
    assert np.all(np.isfinite(model.logits(np.zeros((2, 8, 8, 1), "float32"))))
