"""``python -m train`` as a user runs it: digits end to end, resume after SIGKILL, a bad flag.

One uninterrupted run (a module fixture) serves both as the end-to-end check and as the
reference the killed-and-restarted run must reproduce exactly.
"""
import csv
import json
import os
import re
import signal
import subprocess

import keras
import numpy as np
import pytest

from tests._train_helpers import check_export, python_m_train, tensorboard_tags

pytestmark = pytest.mark.slow

EPOCHS = 3
STEPS = 1293 // 256  # digits: 1293 training examples (see test_data)
ARGS = ["--model=digits", "--dataset=digits", f"--epochs={EPOCHS}", "--batch_size=256",
        "--time_steps=3", "--dropout=0.3", "--deterministic", "--seed=3"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """An uninterrupted run: ``(model_dir, stdout, stderr)``."""
    model_dir = str(tmp_path_factory.mktemp("straight") / "model")
    proc = python_m_train(*ARGS, f"--model_dir={model_dir}",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return model_dir, out, err


def _history(model_dir):
    with open(os.path.join(model_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_digits_end_to_end(straight_run):
    model_dir, out, err = straight_run
    assert "Epoch 1/" not in out and "\x1b[" not in out  # no progress bar off a terminal
    summaries = [line for line in err.splitlines() if "] epoch " in line]
    assert len(summaries) == EPOCHS and "val_top1=" in summaries[-1]
    assert f"epoch {EPOCHS}/{EPOCHS}: " in summaries[-1]
    with open(os.path.join(model_dir, "flags.txt")) as f:
        flags_text = f.read()
    assert "--time_steps=3" in flags_text and "--batch_size=256" in flags_text
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    assert (config["time_steps"], config["batch_size"], config["seed"]) == (3, 256, 3)
    rows = _history(model_dir)
    assert [row["epoch"] for row in rows] == [str(e) for e in range(EPOCHS)]
    assert {"loss", "top1", "top5", "val_loss", "val_top1", "val_top5"} <= set(rows[0])
    tags = tensorboard_tags(os.path.join(model_dir, "logs"))
    assert {"epoch_loss", "epoch_top1", "epoch_top5"} <= tags
    for layer in ("encoder", "tandem_conv1", "tandem_dense1"):  # activity per spiking layer
        assert f"spike_count/{layer}" in tags and f"synops/{layer}" in tags
    assert sorted(os.listdir(os.path.join(model_dir, "backup"))) == ["epoch_2.weights.h5",
                                                                      "epoch_3.weights.h5"]
    images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 1)).astype("float32")
    keras_model, _ = check_export(os.path.join(model_dir, "export"), images)
    assert keras_model.get_layer("encoder").time_steps == 3


def test_resume_after_sigkill(straight_run, tmp_path):
    straight_dir = straight_run[0]
    killed_dir = str(tmp_path / "killed")
    killed = python_m_train(*ARGS, f"--model_dir={killed_dir}",
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for line in killed.stderr:  # kill right after the summary of epoch 1 (backup is written)
        if f"epoch 1/{EPOCHS}:" in line:
            killed.send_signal(signal.SIGKILL)
            break
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not os.path.exists(os.path.join(killed_dir, "export"))

    restarted = python_m_train(*ARGS, f"--model_dir={killed_dir}",
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = restarted.communicate(timeout=600)
    assert restarted.returncode == 0, err[-3000:]
    resumed = re.search(r"resuming from epoch (\d+)/", err)
    assert resumed and 1 <= int(resumed.group(1)) < EPOCHS
    assert f"epoch 1/{EPOCHS}:" not in err  # no epoch trained twice

    # Same per-epoch metrics (dropout masks included), same final weights and optimizer state.
    assert _history(killed_dir) == _history(straight_dir)
    a = keras.models.load_model(os.path.join(straight_dir, "export", "model.keras"))
    b = keras.models.load_model(os.path.join(killed_dir, "export", "model.keras"))
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)
    assert int(a.optimizer.iterations.numpy()) == int(b.optimizer.iterations.numpy()) == EPOCHS * STEPS
    assert len(a.optimizer.variables) == len(b.optimizer.variables) > 2
    for va, vb in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)


def test_resume_after_the_newest_backup_is_damaged(straight_run, tmp_path):
    """A newest backup that cannot be read falls back to the one before *with its epoch*:
    the resumed epochs see the batches (and dropout masks) of the uninterrupted run, so the
    history and the final weights are the straight run's, bit for bit. (Keras's
    BackupAndRestore fell back to its .bkp weights but the data pipeline resumed one epoch
    later: two epochs ran on one epoch's batches.)"""
    model_dir = str(tmp_path / "damaged")
    first = python_m_train(*ARGS, "--epochs=2", f"--model_dir={model_dir}",
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    newest = os.path.join(model_dir, "backup", "epoch_2.weights.h5")
    with open(newest, "r+b") as f:
        f.truncate(4096)
    resumed = python_m_train(*ARGS, f"--model_dir={model_dir}",
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    warnings = [line for line in err.splitlines() if f"backup {newest} cannot be read" in line]
    assert len(warnings) == 1 and "resuming from the backup before it" in warnings[0]
    assert f"resuming from epoch 1/{EPOCHS}" in err
    assert _history(model_dir) == _history(straight_run[0])
    a = keras.models.load_model(os.path.join(straight_run[0], "export", "model.keras"))
    b = keras.models.load_model(os.path.join(model_dir, "export", "model.keras"))
    for va, vb in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)


def test_bad_flag_is_one_line_naming_it(tmp_path):
    proc = python_m_train("--model=digits", "--dataset=digits", "--time_steps=0",
                          f"--model_dir={tmp_path}", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    lines = [line for line in err.splitlines() if line.startswith("train: ")]
    assert lines == ["train: error: --time_steps=0: 0 is not an integer in the range [1, 256]"]
    assert "Traceback" not in err
