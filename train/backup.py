"""The run's backup: after every epoch, one file with the weights and the optimizer state,
named by the number of epochs it holds; restored before ``fit`` resumes.

``BACKUP_DIR/epoch_N.weights.h5`` holds the state after ``N`` epochs (``model.save_weights``:
weights and optimizer variables). The file's name is the one record of the epoch: the input
pipeline resumes at epoch ``N`` because the weights of epoch ``N`` were restored, never from
a separate metadata file that could disagree. Each backup is written beside the others as
``incoming.weights.h5`` and then renamed, so a kill, a signal or a full disk never leaves a
partial backup under an epoch's name; the newest two are kept. A newest backup that cannot
be read (a disk error) falls back to the one before, with a warning naming it: the epoch
comes from the file restored, so the data order stays that of the uninterrupted run. A
backup directory with nothing readable is refused (:class:`BackupError`, naming the file).

Backups written by ``keras.callbacks.BackupAndRestore`` (``latest.weights.h5`` and
``training_metadata.json``, earlier versions of ``python -m train``) are read too.

Example:
  >>> import tempfile, keras
  >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  >>> model.compile("adam", "mse")
  >>> model.optimizer.build(model.trainable_variables)  # as after a training step
  >>> directory = tempfile.mkdtemp()
  >>> save(model, directory, epochs_done=3)
  >>> restore(model, directory)[0]
  3
"""
from __future__ import annotations

import json
import os
import re

import keras
import tensorflow as tf
from absl import logging

INCOMING = "incoming.weights.h5"
_NAME = re.compile(r"^epoch_(\d+)\.weights\.h5$")
_KEEP = 2
# keras.callbacks.BackupAndRestore's layout (read, and removed once a new backup is written)
_LEGACY_WEIGHTS, _LEGACY_EPOCH = "latest.weights.h5", "training_metadata.json"
_LEGACY = (_LEGACY_WEIGHTS, _LEGACY_EPOCH, _LEGACY_WEIGHTS + ".bkp", _LEGACY_EPOCH + ".bkp")


class BackupError(ValueError):
    """No readable backup in a backup directory that holds one; ``str()`` names the file."""


def path_of(backup_dir: str, epochs_done: int) -> str:
    return os.path.join(backup_dir, f"epoch_{epochs_done}.weights.h5")


def _candidates(backup_dir: str) -> list[tuple[int, str]]:
    """``(epochs done, path)`` of every backup, newest first."""
    names = tf.io.gfile.listdir(backup_dir) if tf.io.gfile.isdir(backup_dir) else []
    found = [(int(m.group(1)), path_of(backup_dir, int(m.group(1))))
             for m in map(_NAME.match, names) if m]
    if _LEGACY_WEIGHTS in names:
        found.append((-1, os.path.join(backup_dir, _LEGACY_WEIGHTS)))  # epoch read on restore
    return sorted(found, reverse=True)


def _legacy_epoch(backup_dir: str) -> int:
    path = os.path.join(backup_dir, _LEGACY_EPOCH)
    try:
        with tf.io.gfile.GFile(path) as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError, tf.errors.OpError) as e:
        raise BackupError(f"{path}: the epoch of {_LEGACY_WEIGHTS} cannot be read "
                          f"({_problem(e)})") from None


def _problem(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def epochs_done(backup_dir: str) -> int:
    """The epochs held by the newest backup (0: none); what :func:`restore` tries first."""
    candidates = _candidates(backup_dir)
    if not candidates:
        return 0
    epochs, _ = candidates[0]
    return epochs if epochs >= 0 else _legacy_epoch(backup_dir)


def restore(model: keras.Model, backup_dir: str) -> tuple[int, str | None]:
    """Loads the newest readable backup into ``model`` and its optimizer (call inside the
    strategy's scope); returns ``(epochs done, path)``, ``(0, None)`` without a backup.

    Raises:
      BackupError: ``backup_dir`` exists but no backup in it can be read.
    """
    candidates = _candidates(backup_dir)
    if not candidates:
        if tf.io.gfile.isdir(backup_dir) and tf.io.gfile.listdir(backup_dir):
            raise BackupError(f"{backup_dir}: holds no backup (epoch_N.weights.h5)")
        return 0, None
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist to load
    problems = []
    for epochs, path in candidates:
        try:
            if epochs < 0:
                epochs = _legacy_epoch(backup_dir)
            model.load_weights(path)
        except (OSError, ValueError, KeyError, tf.errors.OpError) as e:
            problems.append(f"{path} cannot be read ({_problem(e)})")
            continue
        for problem in problems:
            logging.warning("backup %s: resuming from the backup before it", problem)
        return epochs, path
    raise BackupError(problems[0] if len(problems) == 1 else "; ".join(problems))


def save(model: keras.Model, backup_dir: str, epochs_done: int) -> None:
    """Writes the backup of ``epochs_done`` epochs: beside the others, then renamed; keeps
    the newest two and removes ``keras.callbacks.BackupAndRestore``'s files."""
    tf.io.gfile.makedirs(backup_dir)
    incoming = os.path.join(backup_dir, INCOMING)
    model.save_weights(incoming, overwrite=True)
    if "://" not in incoming:  # on the disk before its name says it is there
        with open(incoming, "rb") as f:
            os.fsync(f.fileno())
    tf.io.gfile.rename(incoming, path_of(backup_dir, epochs_done), overwrite=True)
    for _, old in _candidates(backup_dir)[_KEEP:]:
        tf.io.gfile.remove(old)
    for name in _LEGACY:
        if tf.io.gfile.exists(os.path.join(backup_dir, name)):
            tf.io.gfile.remove(os.path.join(backup_dir, name))


class Backup(keras.callbacks.Callback):
    """Backs the run up at every epoch end (:func:`save`). Put it after the callbacks that
    record the epoch (``history.csv``): the backup is the point from which a run resumes."""

    def __init__(self, backup_dir: str):
        super().__init__()
        self.backup_dir = backup_dir

    def on_epoch_end(self, epoch, logs=None):
        save(self.model, self.backup_dir, epoch + 1)
