"""A training run killed part-way (SIGKILL) and restarted ends where an uninterrupted run ends.

With dropout, so that the random streams of the resumed epochs must match too."""
import csv
import os
import re
import signal
import subprocess

import keras
import numpy as np

import tandem_keras  # noqa: F401  (registers the layers for keras.models.load_model)
from tests._train_helpers import python_m_train

EPOCHS = 4
ARGS = ["--model=digits", "--dataset=digits", f"--epochs={EPOCHS}", "--batch_size=256",
        "--time_steps=2", "--dropout=0.3", "--deterministic", "--seed=3"]


def _history(model_dir):
    with open(os.path.join(model_dir, "history.csv")) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_resume_after_sigkill(tmp_path):
    straight_dir, killed_dir = str(tmp_path / "straight"), str(tmp_path / "killed")
    straight = python_m_train(*ARGS, f"--model_dir={straight_dir}",
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = python_m_train(*ARGS, f"--model_dir={killed_dir}",
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for line in killed.stderr:  # kill right after the summary of epoch 2 (backup is written)
        if f"epoch 2/{EPOCHS}:" in line:
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
    assert resumed and 2 <= int(resumed.group(1)) < EPOCHS
    assert f"epoch 1/{EPOCHS}:" not in err  # no epoch trained twice
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-3000:]

    # Same per-epoch metrics and the same final weights and optimizer state.
    assert _history(killed_dir) == _history(straight_dir)
    a = keras.models.load_model(os.path.join(straight_dir, "export", "model.keras"))
    b = keras.models.load_model(os.path.join(killed_dir, "export", "model.keras"))
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)
    steps = 1293 // 256
    assert int(a.optimizer.iterations.numpy()) == int(b.optimizer.iterations.numpy()) == EPOCHS * steps
    assert len(a.optimizer.variables) == len(b.optimizer.variables) > 2
    for va, vb in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.path)
