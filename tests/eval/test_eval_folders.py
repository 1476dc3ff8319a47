"""python -m eval on image folders: the training split wherever the images lie, test folders
with --split=all, other folders refused.

Digits written as PNG files into class folders. References: the Keras model's own logits
on the images read back with NumPy's permutation of the sorted file list (the partition
common.datasets documents), not through eval.
"""
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from tests._train_helpers import ROOT
from common import datasets
from train import export as train_export

report_lib = pytest.importorskip("eval.report")


def _digits_folder(root, indices):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = np.round(x.reshape(-1, 8, 8, 1) * 255 / 16).astype(np.uint8)
    for i in indices:
        path = os.path.join(root, f"digit_{y[i]}", f"{i:04d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tf.io.write_file(path, tf.io.encode_png(x[i]))
    return str(root)


def _read_folder(root, validation_split=None):
    """(images, labels) of a folder: sorted class folders and files; with a split fraction
    the held-out part: the last round(n * fraction) of a permutation with seed 0."""
    classes = sorted(os.listdir(root))
    files = [(os.path.join(root, c, f), k) for k, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(root, c)))]
    if validation_split is not None:
        order = np.random.default_rng(0).permutation(len(files))
        files = [files[i] for i in order[len(files) - int(round(len(files) * validation_split)):]]
    images = np.stack([np.repeat(tf.io.decode_png(tf.io.read_file(f)).numpy(), 3, -1)
                       for f, _ in files]).astype("float32")
    return images, np.array([k for _, k in files])


def _error(model, images, labels):
    logits = np.asarray(model.predict(images, verbose=0))
    return 100 * float(np.mean(logits.argmax(1) != labels))


@pytest.fixture(scope="module")
def folder_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    train_dir = _digits_folder(root / "machine" / "train", range(0, 300))
    test_dir = _digits_folder(root / "test", range(300, 400))
    source = datasets.load(f"folder:{train_dir}", validation_split=0.2)
    keras.utils.set_random_seed(1)
    model = models.digits(input_shape=(8, 8, 3), time_steps=3)
    export_dir = str(root / "export")
    train_export.export(model, export_dir, source=source, training={
        "validation_split": 0.2, "num_train": source.num_train,
        "num_validation": source.num_validation})
    return {"root": root, "train": train_dir, "test": test_dir, "model": model,
            "export": export_dir}


def _evaluate(export_dir, **kwargs):
    [report] = report_lib.evaluate_models([export_dir], batch_size=64, analysis=False,
                                          quiet=True, **kwargs)
    return report


def test_export_records_the_folder_by_name_and_fingerprint(folder_export):
    with open(os.path.join(folder_export["export"], "assets", "tandem_keras.json")) as f:
        training = json.load(f)["training"]
    assert training["dataset"] == "folder:train"
    assert training["classes"] == [f"digit_{d}" for d in range(10)]
    assert training["folder_files"] == 300 and len(training["folder_fingerprint"]) == 16
    for name in os.listdir(folder_export["export"]):  # no path of the training machine
        path = os.path.join(folder_export["export"], name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                assert str(folder_export["root"]).encode() not in f.read(), name


def test_validation_split_wherever_the_images_lie(folder_export, tmp_path):
    expected = _error(folder_export["model"], *_read_folder(folder_export["train"], 0.2))
    here = _evaluate(folder_export["export"], dataset=f"folder:{folder_export['train']}",
                     split="validation")
    copy = shutil.copytree(folder_export["train"], tmp_path / "elsewhere" / "images")
    there = _evaluate(folder_export["export"], dataset=f"folder:{copy}", split="validation")
    assert here["examples"] == there["examples"] == 60
    assert here["top1_error"] == there["top1_error"] == pytest.approx(expected)
    assert here["top5_error"] == there["top5_error"]


def test_a_test_folder_with_split_all(folder_export):
    expected = _error(folder_export["model"], *_read_folder(folder_export["test"]))
    report = _evaluate(folder_export["export"], dataset=f"folder:{folder_export['test']}",
                       split="all")
    assert report["examples"] == 100
    assert report["top1_error"] == pytest.approx(expected)


@pytest.mark.parametrize("case, message", [
    ("no_dataset", r"--dataset=folder:DIR is needed: the model .* was trained on a folder "
                   r"named 'train' \(300 images, 10 classes\)"),
    ("other_folder", r"not the images the model .* was trained on, a folder named 'train'.*"
                     r"this folder has 299 images of 10 classes, fingerprint"),
    ("test_split", r"a folder has no test split; --split=all evaluates every image"),
])
def test_refused_in_one_line(folder_export, tmp_path, case, message):
    other = shutil.copytree(folder_export["train"], tmp_path / "other" / "train")
    os.remove(os.path.join(other, "digit_3", sorted(os.listdir(os.path.join(other, "digit_3")))[0]))
    kwargs = {"no_dataset": dict(split="validation"),
              "other_folder": dict(dataset=f"folder:{other}", split="validation"),
              "test_split": dict(dataset=f"folder:{folder_export['test']}", split="test")}[case]
    with pytest.raises(report_lib.EvalError, match=message) as error:
        _evaluate(folder_export["export"], **kwargs)
    assert "\n" not in str(error.value)


def _run(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_train_on_a_folder_then_evaluate_a_copy_and_a_test_folder(tmp_path):
    """The issue's done-when: python -m train on a folder, the images copied elsewhere (the
    original gone), python -m eval --split=validation there gives the same errors, and a
    separate test folder is evaluated with --split=all."""
    train_dir = _digits_folder(tmp_path / "machine" / "digits", range(0, 500))
    test_dir = _digits_folder(tmp_path / "test_images", range(500, 700))
    export_dir = str(tmp_path / "run" / "export")
    result = _run("train", "--model=digits", f"--dataset=folder:{train_dir}", "--epochs=3",
                  "--batch_size=32", "--time_steps=2", "--validation_split=0.2",
                  f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]

    def evaluate(dataset, split, name):
        out = str(tmp_path / f"{name}.json")
        result = _run("eval", f"--saved_model={export_dir}", f"--dataset=folder:{dataset}",
                      f"--split={split}", f"--output_json={out}", "--noanalysis")
        assert result.returncode == 0, result.stderr[-3000:]
        with open(out) as f:
            return json.load(f), result.stdout

    before, _ = evaluate(train_dir, "validation", "before")
    moved = shutil.copytree(train_dir, tmp_path / "user" / "data" / "digits")
    shutil.rmtree(tmp_path / "machine")
    after, _ = evaluate(moved, "validation", "after")
    assert after["examples"] == before["examples"] == 100
    assert (after["top1_error"], after["top5_error"]) == (before["top1_error"], before["top5_error"])
    with open(tmp_path / "run" / "history.csv") as f:  # training's own validation accuracy
        last = f.read().strip().splitlines()[-1].split(",")
        header = open(tmp_path / "run" / "history.csv").readline().strip().split(",")
    assert after["top1_error"] == pytest.approx(100 * (1 - float(last[header.index("val_top1")])),
                                                abs=1e-3)
    keras_model = keras.models.load_model(os.path.join(export_dir, "model.keras"))
    test, printed = evaluate(test_dir, "all", "test")
    assert test["examples"] == 200
    assert test["top1_error"] == pytest.approx(_error(keras_model, *_read_folder(test_dir)))
    assert "model: tandem SNN, IF neurons, T=2, membrane decoding" in printed
