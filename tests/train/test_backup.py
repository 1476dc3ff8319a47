"""train.backup, train.rundir: the run directory's files in-process (the fast path of
tests/train/test_run_directory.py, which runs ``python -m train`` as a user does).

References: a backup restores exactly the weights and optimizer state that were saved
(compared with the model's own arrays at save time); the epoch restored is the one named
by the file that is loaded; history rows are kept by their epoch column.
"""
import json
import os
import shutil

import keras
import numpy as np
import pytest

from train import backup, rundir
from train.config import TrainConfig


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.1), "mse")
    return model


def _train(model, steps=2):
    x = np.arange(12, dtype="float32").reshape(4, 3)
    model.fit(x, np.ones((4, 2), "float32"), batch_size=2, epochs=steps, verbose=0)


def _state(model):
    return [np.array(v) for v in model.weights] + [np.array(v) for v in model.optimizer.variables]


def _saved_twice(tmp_path):
    """Backups after 'epoch' 1 and 2 of one model; returns their states."""
    model, states = _model(), {}
    for epochs in (1, 2):
        _train(model)
        backup.save(model, str(tmp_path), epochs)
        states[epochs] = _state(model)
    return states


def test_restore_is_the_saved_state_and_its_epoch(tmp_path):
    states = _saved_twice(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["epoch_1.weights.h5", "epoch_2.weights.h5"]
    model = _model(seed=1)
    assert backup.restore(model, str(tmp_path)) == (2, str(tmp_path / "epoch_2.weights.h5"))
    for got, want in zip(_state(model), states[2]):
        np.testing.assert_array_equal(got, want)
    assert int(model.optimizer.iterations.numpy()) == 8  # 2 x (2 epochs of 2 steps)


def test_keeps_the_newest_two(tmp_path):
    model = _model()
    for epochs in (1, 2, 3):
        backup.save(model, str(tmp_path), epochs)
    assert sorted(os.listdir(tmp_path)) == ["epoch_2.weights.h5", "epoch_3.weights.h5"]
    assert backup.epochs_done(str(tmp_path)) == 3


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_damaged_newest_falls_back_to_the_one_before(tmp_path, damage):
    """The epoch comes from the file restored: the data pipeline resumes where the weights are."""
    states = _saved_twice(tmp_path)
    newest = tmp_path / "epoch_2.weights.h5"
    if damage == "truncated":
        newest.write_bytes(newest.read_bytes()[:1000])
    else:
        newest.unlink()
    model = _model(seed=1)
    assert backup.restore(model, str(tmp_path))[0] == 1
    for got, want in zip(_state(model), states[1]):
        np.testing.assert_array_equal(got, want)


def test_nothing_readable_is_refused_naming_the_file(tmp_path):
    model = _model()
    backup.save(model, str(tmp_path), 1)
    path = tmp_path / "epoch_1.weights.h5"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(backup.BackupError, match=f"^{path} cannot be read \\(.*truncated"):
        backup.restore(_model(), str(tmp_path))
    (tmp_path / "epoch_1.weights.h5").unlink()
    (tmp_path / "other").write_text("x")
    with pytest.raises(backup.BackupError, match="holds no backup"):
        backup.restore(_model(), str(tmp_path))
    assert backup.restore(_model(), str(tmp_path / "none")) == (0, None)


HEADER = "epoch,loss\r\n"


@pytest.mark.parametrize("text, done, kept", [
    (HEADER + "0,1.5\r\n1,1.2\r\n2,1.0\r\n", 2, HEADER + "0,1.5\r\n1,1.2\r\n"),
    (HEADER + "0,1.5\r\n1,1.", 2, HEADER + "0,1.5\r\n"),        # a row cut short by a kill
    (HEADER + "0,1.5\r\n0,1.5\r\n1,1.2\r\n", 2, HEADER + "0,1.5\r\n0,1.5\r\n1,1.2\r\n"),
    (HEADER + "0,1.5\r\n", 0, HEADER),
    ("epoch,lo", 0, None),                                      # the header cut short
])
def test_trim_history(tmp_path, text, done, kept):
    path = tmp_path / "history.csv"
    path.write_bytes(text.encode())
    rundir.trim_history(str(path), done)
    assert (path.read_bytes().decode() if path.exists() else None) == kept


def test_lock_names_its_holder_and_is_released(tmp_path):
    import socket

    with rundir.locked(str(tmp_path)):
        holder = (tmp_path / ".lock").read_text()
        assert holder.startswith(f"pid {os.getpid()} on {socket.gethostname()} since ")
        # flock locks belong to an open file description: a second open is a second run
        with pytest.raises(rundir.RunDirError, match=f"in use by another run \\({holder}\\)"):
            with rundir.locked(str(tmp_path)):
                pass
    with rundir.locked(str(tmp_path)):  # released
        pass
    assert (tmp_path / ".lock").read_text() == ""
    with pytest.raises(rundir.RunDirError, match="history.csv: exists and is not a directory$"):
        (tmp_path / "history.csv").write_text("")
        with rundir.locked(str(tmp_path / "history.csv")):
            pass


def test_config_round_trip_and_damaged_config(tmp_path):
    config = TrainConfig(model_dir=str(tmp_path), model="digits", time_steps=3)
    rundir.record(config)
    assert TrainConfig.from_dict(rundir.read_config(str(tmp_path))) == config
    assert (tmp_path / "flags.txt").read_text() == config.to_flags()
    path = tmp_path / "config.json"
    path.write_text(path.read_text()[:20])
    with pytest.raises(rundir.RunDirError, match=f"^--model_dir={tmp_path}: {path} cannot be read"):
        rundir.read_config(str(tmp_path))
    path.write_text(json.dumps({"model": "digits", "color": "red"}))
    with pytest.raises(rundir.RunDirError, match="unknown fields color"):
        rundir.read_config(str(tmp_path))
    incomplete = config.to_dict()
    del incomplete["time_steps"], incomplete["seed"]
    path.write_text(json.dumps(incomplete))
    with pytest.raises(rundir.RunDirError, match=f"{path} is incomplete: it lacks --time_steps, "
                                                 "--seed, which a resumed run must keep; --restart"):
        rundir.read_config(str(tmp_path))


def test_restart_never_deletes_files_of_the_users_in_the_export_folder(tmp_path):
    (tmp_path / "history.csv").write_text(HEADER)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "notes.txt").write_text("mine")
    with pytest.raises(rundir.RunDirError, match="--restart would delete .*export, which holds "
                                                 "files that were not written there by an export "
                                                 "\\(notes.txt\\); move them, nothing was deleted"):
        rundir.clear(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["export", "history.csv"]


def test_a_backup_that_cannot_be_written_keeps_the_ones_before(tmp_path, monkeypatch):
    model = _model()
    backup.save(model, str(tmp_path), 1)
    before = (tmp_path / "epoch_1.weights.h5").read_bytes()

    def full(self, path, **kwargs):
        open(path, "wb").write(b"partial")
        raise OSError(122, "Disk quota exceeded (h5py's long message\non several lines)")

    monkeypatch.setattr(type(model), "save_weights", full)
    with pytest.raises(backup.BackupWriteError) as error:
        backup.save(model, str(tmp_path), 2)
    assert str(error.value) == (f"writing the backup of epoch 2 to {tmp_path} failed ([Errno 122] "
                                "Disk quota exceeded); the backup of epoch 1 is kept; rerun the "
                                "same command to resume from it")
    assert os.listdir(tmp_path) == ["epoch_1.weights.h5"]
    assert (tmp_path / "epoch_1.weights.h5").read_bytes() == before
    with pytest.raises(backup.BackupWriteError, match="; no epoch is backed up$"):
        backup.save(model, str(tmp_path / "new"), 1)


def test_where_backups_cannot_go_is_found_by_writing_there(tmp_path):
    assert backup.write_problem(str(tmp_path / "a" / "backup")) is None
    assert not (tmp_path / "a" / "backup").exists()  # a backup folder means a run to resume
    (tmp_path / "file").write_text("x")
    assert backup.write_problem(str(tmp_path / "file")) == f"{tmp_path}/file exists and is not a directory"
    assert backup.write_problem(str(tmp_path / "file" / "backup")).startswith(
        f"{tmp_path}/file/backup cannot be written ([Errno 20] Not a directory")


def test_restart_says_what_it_deletes(tmp_path, caplog):
    backup.save(_model(), str(tmp_path / "backup"), 4)
    (tmp_path / "history.csv").write_text(HEADER)
    (tmp_path / "notes.txt").write_text("mine")
    with caplog.at_level("WARNING"):
        rundir.clear(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
    assert f"--restart: deleting backup, history.csv from {tmp_path} (the backup of 4 epochs)" \
        in caplog.text
    shutil.rmtree(tmp_path)
