"""The run's backup: after every epoch, one file with the weights and the optimizer state,
named by the number of epochs it holds; restored before ``fit`` resumes.

``BACKUP_DIR/epoch_N.weights.h5`` holds the state after ``N`` epochs (``model.save_weights``:
weights and optimizer variables). The file's name is the one record of the epoch: the input
pipeline resumes at epoch ``N`` because the weights of epoch ``N`` were restored, never from
a separate metadata file that could disagree. Each backup is written beside the others as
``incoming.weights.h5`` and then renamed, so a kill, a signal or a full disk never leaves a
partial backup under an epoch's name; the newest two are kept. A backup that cannot be
written (a full disk, a quota) stops the run with :class:`BackupWriteError`, the backups
before it kept; a folder where backups cannot be written at all is found before training
(:func:`write_problem`). A newest backup that cannot be read (a disk error) falls back to
the one before, with a warning naming it: the epoch comes from the file restored, so the
data order stays that of the uninterrupted run. A backup directory with nothing readable is
refused (:class:`BackupError`, naming the file).

Example:
  >>> import tempfile, keras
  >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  >>> model.compile("adam", "mse")
  >>> model.optimizer.build(model.trainable_variables)  # as after a training step
  >>> directory = tempfile.mkdtemp()
  >>> write_problem(directory) is None
  True
  >>> save(model, directory, epochs_done=3)
  >>> restore(model, directory)[0]
  3
"""
from __future__ import annotations

import os
import re

import keras
import tensorflow as tf
from absl import logging

INCOMING = "incoming.weights.h5"
_NAME = re.compile(r"^epoch_(\d+)\.weights\.h5$")
_KEEP = 2


class BackupError(ValueError):
    """No readable backup in a backup directory that holds one; ``str()`` names the file."""


class BackupWriteError(RuntimeError):
    """A backup could not be written (a full disk, a quota); ``str()`` is the one-line
    message, saying which backup is kept."""


def path_of(backup_dir: str, epochs_done: int) -> str:
    return os.path.join(backup_dir, f"epoch_{epochs_done}.weights.h5")


def _candidates(backup_dir: str) -> list[tuple[int, str]]:
    """``(epochs done, path)`` of every backup, newest first."""
    names = tf.io.gfile.listdir(backup_dir) if tf.io.gfile.isdir(backup_dir) else []
    return sorted(((int(m.group(1)), path_of(backup_dir, int(m.group(1))))
                   for m in map(_NAME.match, names) if m), reverse=True)


def _problem(error: Exception) -> str:
    if isinstance(error, OSError) and error.errno:  # h5py's message spans several lines
        return f"[Errno {error.errno}] {os.strerror(error.errno)}"
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def epochs_done(backup_dir: str) -> int:
    """The epochs held by the newest backup (0: none); what :func:`restore` tries first."""
    candidates = _candidates(backup_dir)
    return candidates[0][0] if candidates else 0


def write_problem(backup_dir: str) -> str | None:
    """Why backups cannot be written to ``backup_dir`` (None: they can), found by writing a
    file there before training rather than after its first epoch. A folder this creates is
    removed again (a ``backup/`` folder is a run to resume)."""
    if "://" in backup_dir:
        return None
    if os.path.lexists(backup_dir) and not os.path.isdir(backup_dir):
        return f"{backup_dir} exists and is not a directory"
    created, probe = not os.path.isdir(backup_dir), os.path.join(backup_dir, f".probe-{os.getpid()}")
    try:
        os.makedirs(backup_dir, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0")
        os.remove(probe)
        if created:
            os.rmdir(backup_dir)
    except OSError as error:
        return f"{backup_dir} cannot be written ({_problem(error)})"
    return None


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
    the newest two.

    Raises:
      BackupWriteError: it could not be written (nothing of it is left, the backups before
        it are kept).
    """
    incoming = os.path.join(backup_dir, INCOMING)
    try:
        tf.io.gfile.makedirs(backup_dir)
        model.save_weights(incoming, overwrite=True)
        if "://" not in incoming:  # on the disk before its name says it is there
            with open(incoming, "rb") as f:
                os.fsync(f.fileno())
        tf.io.gfile.rename(incoming, path_of(backup_dir, epochs_done), overwrite=True)
    except (OSError, tf.errors.OpError) as error:
        if tf.io.gfile.exists(incoming):
            tf.io.gfile.remove(incoming)  # a partial file would only take space
        candidates = _candidates(backup_dir)
        kept = (f"the backup of epoch {candidates[0][0]} is kept; rerun the same command to "
                "resume from it" if candidates else "no epoch is backed up")
        raise BackupWriteError(f"writing the backup of epoch {epochs_done} to {backup_dir} "
                               f"failed ({_problem(error)}); {kept}") from None
    for _, old in _candidates(backup_dir)[_KEEP:]:
        tf.io.gfile.remove(old)


class Backup(keras.callbacks.Callback):
    """Backs the run up at every epoch end (:func:`save`). Put it after the callbacks that
    record the epoch (``history.csv``): the backup is the point from which a run resumes."""

    def __init__(self, backup_dir: str):
        super().__init__()
        self.backup_dir = backup_dir

    def on_epoch_end(self, epoch, logs=None):
        save(self.model, self.backup_dir, epoch + 1)
