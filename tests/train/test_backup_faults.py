"""A backup folder that cannot be written, and a full disk while a backup is written, as a
user meets them: one line, found before training where it can be, the backups before kept
and the run resumable (``python -m train`` as a subprocess, real folders). The full disk trains
two epochs, so it is marked slow; rundir and backup's own tests cover the refusals in-process."""
import os
import shutil
import subprocess
import sys

import pytest

from tests._train_helpers import ROOT, read_only

DIGITS = ["--model=digits", "--dataset=digits", "--time_steps=2", "--batch_size=256"]


def _train(model_dir, *args, read_only_folder=None):
    argv = [sys.executable, "-m", "train", *DIGITS, f"--model_dir={model_dir}", *args]
    if read_only_folder is not None:
        argv = read_only(read_only_folder, argv)
    return subprocess.run(argv, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=900)


def _files(directory):
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))}


def _errors(stderr):
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("train: error: ")]


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("backup_faults") / "run"
    result = _train(model_dir, "--epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir


def _resumable(model_dir):
    """The run directory python -m train ... --epochs=1 leaves (its config and the backup of
    epoch 1), made here rather than by training."""
    from train import backup, recipe, rundir
    from train.config import TrainConfig

    config = TrainConfig(model="digits", dataset="digits", time_steps=2, batch_size=256, epochs=1,
                         model_dir=str(model_dir))
    rundir.record(config)
    model = recipe.compiled_model(config, (8, 8, 1), 10, steps_per_epoch=5)
    model.optimizer.build(model.trainable_variables)
    backup.save(model, str(model_dir / "backup"), 1)
    (model_dir / "history.csv").write_text("epoch,loss\n0,2.0\n")
    return model_dir


def test_a_read_only_backup_folder_is_refused_before_training(tmp_path):
    model_dir = _resumable(tmp_path / "run")
    backup, history = _files(model_dir / "backup"), (model_dir / "history.csv").read_text()
    result = _train(model_dir, "--epochs=2", read_only_folder=model_dir / "backup")
    assert result.returncode == 2, result.stderr[-3000:]
    assert _errors(result.stderr) == [
        f"train: error: --model_dir={model_dir}: {model_dir}/backup cannot be written ([Errno "
        + ("30] Read-only file system" if os.geteuid() == 0 else "13] Permission denied")
        + "); the backups of every epoch go there: make it writable, or use another --model_dir"]
    assert "epoch 2/2" not in result.stderr  # refused before training, not after an epoch
    assert _files(model_dir / "backup") == backup and (model_dir / "history.csv").read_text() == history


@pytest.mark.slow
def test_a_full_disk_at_a_backup_keeps_the_one_before_and_the_run_resumes(one_epoch, tmp_path):
    """The backup of epoch 2 is written to /dev/full (ENOSPC on its first write)."""
    model_dir = shutil.copytree(one_epoch, tmp_path / "run")
    backup, export = _files(model_dir / "backup"), _files(model_dir / "export" / "variables")
    os.symlink("/dev/full", model_dir / "backup" / "incoming.weights.h5")
    result = _train(model_dir, "--epochs=2")
    assert result.returncode == 1, result.stderr[-3000:]
    assert _errors(result.stderr) == [
        f"train: error: writing the backup of epoch 2 to {model_dir}/backup failed ([Errno 28] No "
        "space left on device); the backup of epoch 1 is kept; rerun the same command to resume from it"]
    assert _files(model_dir / "backup") == backup  # epoch 1's, and nothing half-written
    assert _files(model_dir / "export" / "variables") == export  # nothing exported
    result = _train(model_dir, "--epochs=2")  # space again: the same command resumes
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from epoch 1/2" in result.stderr
    assert sorted(os.listdir(model_dir / "backup")) == ["epoch_1.weights.h5", "epoch_2.weights.h5"]
    epochs = [line.split(",")[0] for line in (model_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["0", "1"]
