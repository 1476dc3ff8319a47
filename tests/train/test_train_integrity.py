"""``python -m train`` keeps a run directory whole: divergence, resume with new rates, --restart.

One run directory goes through the story a user meets: a good epoch; a resume with a
learning rate of 1e30 that diverges (exit 1, one line, the backup of the good epoch
untouched, nothing exported); a resume with a lower rate that continues from that backup
with the new rate; ``--restart`` with another ``--time_steps`` that starts afresh.
"""
import csv
import json
import os
import subprocess

import keras
import numpy as np
import pytest

from tests._train_helpers import python_m_train

pytestmark = pytest.mark.slow

BASE = ["--model=digits", "--dataset=digits", "--time_steps=2", "--batch_size=256",
        "--lr_schedule=constant"]


def _train(*args):
    proc = python_m_train(*BASE, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _files(directory):
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory))}


def _history(model_dir):
    with open(os.path.join(model_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("integrity") / "run")
    code, out, err = _train("--epochs=1", f"--model_dir={model_dir}")
    assert code == 0, err[-3000:]
    return model_dir, out, err


def test_output_off_a_terminal(run_dir):
    """No progress bar, no ANSI codes, one summary line per epoch, no TF start-up noise."""
    _, out, err = run_dir
    assert "\x1b[" not in out + err and "\b" not in out
    assert "Epoch 1/1" not in out
    assert len([line for line in err.splitlines() if "] epoch 1/1: " in line]) == 1
    for noise in ("absl::InitializeLog", "cuInit", "oneDNN custom operations",
                  "signature_serialization", "Writing fingerprint"):
        assert noise not in err


def test_divergence_keeps_the_last_good_backup(run_dir, tmp_path):
    model_dir = run_dir[0]
    backup = os.path.join(model_dir, "backup")
    before, history = _files(backup), _history(model_dir)
    export_dir = str(tmp_path / "export")
    code, _, err = _train("--epochs=3", "--learning_rate=1e30", f"--model_dir={model_dir}",
                          f"--export_dir={export_dir}")
    assert code == 1, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("train: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert "training diverged" in lines[0] and "epoch 2" in lines[0]
    assert "the backup of epoch 1" in lines[0] and "--learning_rate" in lines[0]
    assert _files(backup) == before  # the NaN epoch was not backed up
    assert _history(model_dir) == history  # nor logged
    assert not os.path.exists(export_dir)


def test_resume_with_a_new_learning_rate(run_dir):
    """Runs after the divergence test: the run goes on from the good epoch at the new rate."""
    model_dir = run_dir[0]
    code, _, err = _train("--epochs=2", "--learning_rate=5e-4", f"--model_dir={model_dir}")
    assert code == 0, err[-3000:]
    assert "resuming from epoch 1/2" in err
    assert [row["epoch"] for row in _history(model_dir)] == ["0", "1"]
    model = keras.models.load_model(os.path.join(model_dir, "export", "model.keras"))
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["learning_rate"] == 5e-4
    with open(os.path.join(model_dir, "export", "assets", "tandem_keras.json")) as f:
        training = json.load(f)["training"]
    assert training["dataset"] == "digits" and training["validation_split"] == 0.1
    assert (training["num_train"], training["num_validation"]) == (1293, 144)


def test_restart_starts_afresh(run_dir):
    model_dir = run_dir[0]
    code, _, err = _train("--epochs=1", "--time_steps=3", "--restart", f"--model_dir={model_dir}")
    assert code == 0, err[-3000:]
    assert "resuming" not in err
    assert [row["epoch"] for row in _history(model_dir)] == ["0"]
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["time_steps"] == 3
    model = keras.models.load_model(os.path.join(model_dir, "export", "model.keras"))
    assert model.get_layer("encoder").time_steps == 3
