"""``python -m train``'s run directory as a user meets it: two runs at once, a killed run,
signals, damaged backups and config, ``--flagfile`` of a run, bounds that would hang.

Every refusal is exit status 2 and one line ``train: error: ...`` naming the culprit; a
signal is exit status 128 + its number and one line naming the backup that is kept;
nothing that was there is lost (the backup files are compared byte for byte).
"""
import csv
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading

import pytest

from tests._train_helpers import python_m_train

D = ["--model=digits", "--dataset=digits", "--time_steps=2", "--batch_size=256",
     "--lr_schedule=constant"]

pytestmark = pytest.mark.slow


class Run:
    """``python -m train D ARGS`` in the background, its stderr read line by line."""

    def __init__(self, *args):
        self.proc = python_m_train(*D, *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text, timeout=300):
        """Reads stderr until a line contains ``text``; fails if the run ends first."""
        while True:
            line = self._queue.get(timeout=timeout)
            assert line is not None, f"ended before {text!r}:\n" + "".join(self.lines[-30:])
            self.lines.append(line)
            if text in line:
                return line

    def finish(self, timeout=600):
        """``(exit status, all of stderr)``."""
        self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=60)) is not None:
            self.lines.append(line)
        return self.proc.returncode, "".join(self.lines)


def _train(*args):
    return Run(*args).finish()


def _error_line(err, prefix="train: error: "):
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def _files(directory):
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory))
            if os.path.isfile(os.path.join(directory, name))}


def _epochs(model_dir):
    with open(os.path.join(model_dir, "history.csv"), newline="") as f:
        return [row["epoch"] for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run directory after one epoch."""
    model_dir = str(tmp_path_factory.mktemp("rundir") / "R")
    code, err = _train("--epochs=1", f"--model_dir={model_dir}")
    assert code == 0, err[-3000:]
    return model_dir


def _copy(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "R")
    return str(tmp_path / "R")


def test_second_run_is_refused_naming_the_holder_and_a_killed_run_leaves_no_lock(tmp_path):
    model_dir = str(tmp_path / "X")
    first = Run("--epochs=10000", f"--model_dir={model_dir}")  # the largest --epochs
    first.wait_for("training digits on digits")
    code, err = _train("--epochs=1", f"--model_dir={model_dir}")
    assert code == 2
    assert _error_line(err).startswith(
        f"train: error: --model_dir={model_dir}: in use by another run (pid {first.proc.pid} "
        f"on {socket.gethostname()} since ")
    first.wait_for("epoch 1/10000: ")  # 10,000 epochs start at once
    first.proc.send_signal(signal.SIGKILL)
    assert first.finish()[0] == -signal.SIGKILL

    done = max(int(name.split("_")[1].split(".")[0])
               for name in os.listdir(os.path.join(model_dir, "backup")) if name.startswith("epoch_"))
    code, err = _train(f"--epochs={done + 1}", f"--model_dir={model_dir}")
    assert code == 0, err[-3000:]
    assert "in use" not in err and f"resuming from epoch {done}/{done + 1}" in err
    assert _epochs(model_dir) == [str(e) for e in range(done + 1)]  # one header, each epoch once


def test_sigterm_during_training_keeps_the_last_backup(tmp_path):
    model_dir = str(tmp_path / "Y")
    run = Run("--epochs=10000", f"--model_dir={model_dir}")
    run.wait_for("epoch 1/10000: ")  # logged once epoch 1 is backed up
    run.proc.send_signal(signal.SIGTERM)
    code, err = run.finish()
    assert code == 128 + signal.SIGTERM, err[-3000:]
    line = _error_line(err, "train: interrupted")
    backup = os.path.join(model_dir, "backup")
    kept = int(line.split("the backup of epoch ")[1].split()[0])
    assert line == (f"train: interrupted by SIGTERM: the backup of epoch {kept} in {backup} is "
                    "kept; rerun the same command to resume")
    assert f"epoch_{kept}.weights.h5" in os.listdir(backup)

    code, err = _train(f"--epochs={kept + 1}", f"--model_dir={model_dir}")
    assert code == 0, err[-3000:]
    assert f"resuming from epoch {kept}/{kept + 1}" in err
    assert _epochs(model_dir) == [str(e) for e in range(kept + 1)]


def test_sigint_after_the_last_epoch_loses_nothing(finished, tmp_path):
    """The signal lands in the last backup or the export: rerunning finishes the run."""
    model_dir = _copy(finished, tmp_path)
    run = Run("--epochs=2", f"--model_dir={model_dir}")
    run.wait_for("epoch 2/2: ")
    run.proc.send_signal(signal.SIGINT)
    code, err = run.finish()
    if code == 0:
        pytest.skip("the run ended before the signal arrived")
    assert code == 128 + signal.SIGINT, err[-3000:]
    line = _error_line(err, "train: interrupted")
    assert line.startswith("train: interrupted by SIGINT: the backup of epoch ")
    kept = int(line.split("the backup of epoch ")[1].split()[0])
    code, err = _train("--epochs=2", f"--model_dir={model_dir}")
    assert code == 0, err[-3000:]
    assert (f"resuming from epoch {kept}/2" in err if kept < 2 else
            "holds 2 epochs (--epochs=2): nothing to train" in err)
    assert _epochs(model_dir) == ["0", "1"]
    assert os.path.isfile(os.path.join(model_dir, "export", "model.keras"))


@pytest.mark.parametrize("damage, words", [
    ("truncate_backup", ["epoch_1.weights.h5 cannot be read", "truncated", "--restart"]),
    ("empty_backup_dir", ["backup: holds no backup", "--restart"]),
    ("truncate_config", ["config.json cannot be read", "--restart"]),
    ("delete_config", ["holds a backup but no config.json", "--restart"]),
])
def test_damaged_run_directory_is_refused_naming_the_file(finished, tmp_path, damage, words):
    model_dir = _copy(finished, tmp_path)
    backup = os.path.join(model_dir, "backup")
    weights = os.path.join(backup, "epoch_1.weights.h5")
    if damage == "truncate_backup":
        with open(weights, "r+b") as f:
            f.truncate(1000)
    elif damage == "empty_backup_dir":
        os.rename(weights, os.path.join(model_dir, "moved_away.h5"))
        open(os.path.join(backup, "incoming.weights.h5"), "wb").close()  # a kill's leftover
    elif damage == "truncate_config":
        with open(os.path.join(model_dir, "config.json"), "r+b") as f:
            f.truncate(30)
    else:
        os.remove(os.path.join(model_dir, "config.json"))
    before = _files(model_dir), _files(backup)
    code, err = _train("--epochs=2", f"--model_dir={model_dir}")
    assert code == 2, err[-3000:]
    line = _error_line(err)
    assert line.startswith(f"train: error: --model_dir={model_dir}: ")
    for word in words:
        assert word in line, line
    assert (_files(model_dir), _files(backup)) == before  # nothing touched


def test_flagfile_of_a_run_resumes_it_and_restart_says_what_it_deletes(finished, tmp_path):
    model_dir = _copy(finished, tmp_path)
    flags_txt = os.path.join(model_dir, "flags.txt")
    code, err = Run(f"--flagfile={flags_txt}", "--epochs=2", f"--model_dir={model_dir}").finish()
    assert code == 0, err[-3000:]
    assert "resuming from epoch 1/2" in err and "deleting" not in err
    assert _epochs(model_dir) == ["0", "1"]

    code, err = Run("--epochs=1", "--restart", f"--model_dir={model_dir}").finish()
    assert code == 0, err[-3000:]
    assert (f"--restart: deleting backup, logs, history.csv, flags.txt, config.json, export "
            f"from {model_dir} (the backup of 2 epochs)") in err
    assert _epochs(model_dir) == ["0"]
