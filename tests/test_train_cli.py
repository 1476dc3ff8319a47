"""``python -m train`` as a user runs it: digits end to end, and a bad flag."""
import csv
import os
import subprocess

import numpy as np

from tests._train_helpers import check_export, python_m_train, tensorboard_tags


def test_digits_end_to_end(tmp_path):
    model_dir = tmp_path / "model"
    proc = python_m_train("--model=digits", "--dataset=digits", "--epochs=2", "--batch_size=128",
                          "--time_steps=3", f"--model_dir={model_dir}",
                          f"--export_dir={tmp_path / 'export'}",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "Epoch 2/2" in out  # Keras progress bars
    summaries = [line for line in err.splitlines() if "] epoch " in line]
    assert len(summaries) == 2 and "epoch 2/2: " in summaries[1] and "val_top1=" in summaries[1]
    with open(model_dir / "flags.txt") as f:
        flags_text = f.read()
    assert "--time_steps=3" in flags_text and "--batch_size=128" in flags_text
    with open(model_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"loss", "top1", "top5", "val_loss", "val_top1", "val_top5"} <= set(rows[0])
    tags = tensorboard_tags(str(model_dir / "logs"))
    assert {"epoch_loss", "epoch_top1", "epoch_top5"} <= tags
    for layer in ("encoder", "tandem_conv1", "tandem_dense1"):  # activity per spiking layer
        assert f"spike_count/{layer}" in tags and f"synops/{layer}" in tags
    assert os.path.exists(model_dir / "backup" / "latest.weights.h5")
    images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 1)).astype("float32")
    keras_model, activity = check_export(str(tmp_path / "export"), images)
    assert keras_model.get_layer("encoder").time_steps == 3


def test_bad_flag_is_one_line_naming_it(tmp_path):
    proc = python_m_train("--model=digits", "--dataset=digits", "--time_steps=0",
                          f"--model_dir={tmp_path}", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    lines = [line for line in err.splitlines() if line.startswith("train: ")]
    assert lines == ["train: error: --time_steps=0: must be an integer >= 1"]
    assert "Traceback" not in err
