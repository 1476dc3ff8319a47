"""The run directory (``--model_dir``): one run at a time, its configuration, its history.

- **One run at a time**: :func:`locked` holds an exclusive lock on ``MODEL_DIR/.lock`` for
  the whole run (``fcntl.flock``); a second run on the same directory is refused in one
  line naming the holder (pid, host, start time). The operating system releases the lock
  when its process ends, however it ends: a killed run leaves no stale lock.
- **The same run when it resumes**: ``config.json`` records the run's
  :class:`~train.config.TrainConfig`. A field of ``train.config.FIXED`` (what is trained,
  on which examples, in which order) that differs from the recorded value is refused in
  one line naming every such flag with its old and new value; the others
  (``train.config.MAY_CHANGE``: more epochs, the learning-rate schedule, the strategy,
  where to export, ...) may change, and ``config.json`` then records the new values.
  ``--restart`` deletes the run's state (:data:`RUN_STATE`) and says what it deleted.
- ``flags.txt`` holds the same configuration as flag lines for ``--flagfile`` (to start
  another run like this one); ``config.json`` is what the programs read. ``--restart`` is
  in neither.
- ``history.csv`` is cut back to the epochs of the backup that is resumed, so that an
  epoch recorded just before a kill is not listed twice.

Every file is written beside its final name and renamed (nothing half-written under it).

Example:
    >>> import tempfile
    >>> from train.config import TrainConfig
    >>> d = tempfile.mkdtemp()
    >>> config = TrainConfig(model_dir=d, model="digits", time_steps=4, epochs=8)
    >>> prepare(config, restart=False); record(config)
    >>> differences(read_config(d), TrainConfig(model_dir=d, model="digits", time_steps=8))
    [('time_steps', 4, 8)]
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import shutil
import socket
import time
from typing import Any, Iterator

from absl import logging

from train import backup
from train.config import FIXED, TrainConfig
from train.export import export_dir_problem

CONFIG_FILE = "config.json"
FLAGS_FILE = "flags.txt"
HISTORY_FILE = "history.csv"
LOCK_FILE = ".lock"
#: What ``--restart`` deletes (``export``: the default ``--export_dir``). In a multi-worker
#: cluster every worker clears its own directory (the chief ``--model_dir``).
RUN_STATE = ("backup", "logs", HISTORY_FILE, FLAGS_FILE, CONFIG_FILE, "export")


class RunDirError(ValueError):
    """``--model_dir`` cannot take this run; ``str()`` is the one-line message."""


def _refuse(model_dir: str, problem: str) -> RunDirError:
    return RunDirError(f"--model_dir={model_dir}: {problem}")


def _check_directory(model_dir: str) -> None:
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise _refuse(model_dir, "exists and is not a directory")


def write_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file renamed over it."""
    temporary = f"{path}.incoming"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def locked(model_dir: str) -> Iterator[None]:
    """Holds ``model_dir``'s lock; raises :class:`RunDirError` naming its holder if taken."""
    if "://" in model_dir:  # gs://... has no locks: one run per directory is up to the user
        yield
        return
    _check_directory(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    fd = os.open(os.path.join(model_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 400).decode("utf-8", "replace").strip() or "another process"
            raise _refuse(model_dir, f"in use by another run ({holder}); wait for it to end "
                                     "or use another --model_dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # the file stays (removing it would race a waiting run)
        os.close(fd)


def read_config(model_dir: str) -> dict | None:
    """The recorded configuration of ``model_dir`` as written (None: no ``config.json``);
    :class:`RunDirError` naming the file if it cannot be read or lacks a field of ``FIXED``."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)
        TrainConfig.from_dict(recorded)
    except (OSError, ValueError, TypeError) as e:
        raise _refuse(model_dir, f"{path} cannot be read ({e}); --restart to start afresh, "
                                 "or another --model_dir") from None
    missing = [name for name in FIXED if name not in recorded]
    if missing:  # a resume could not be checked against them
        raise _refuse(model_dir, f"{path} is incomplete: it lacks "
                                 f"{', '.join('--' + name for name in missing)}, which a resumed "
                                 "run must keep; --restart to start afresh, or another --model_dir")
    return recorded


def differences(recorded: dict, config: TrainConfig) -> list[tuple[str, Any, Any]]:
    """``(field, recorded value, new value)`` for every field of ``FIXED`` that differs."""
    return [(name, recorded[name], getattr(config, name)) for name in FIXED
            if recorded[name] != getattr(config, name)]


def prepare(config: TrainConfig, restart: bool) -> None:
    """Checks (or, with ``restart``, clears) ``config.model_dir`` before a run starts.

    Only a directory with a backup (a run that would resume) is checked: a run that
    failed before its first epoch ended leaves nothing to resume.

    Raises:
      RunDirError: the directory holds a resumable run whose fixed fields differ, a backup
        without a readable ``config.json``, or is not a directory.
    """
    model_dir = config.model_dir
    _check_directory(model_dir)
    if restart:
        clear(model_dir)
    if not os.path.isdir(os.path.join(model_dir, "backup")):
        return
    recorded = read_config(model_dir)
    if recorded is None:
        raise _refuse(model_dir, f"holds a backup but no {CONFIG_FILE} to check the flags "
                                 "against; --restart to start afresh, or another --model_dir")
    changed = differences(recorded, config)
    if changed:
        listed = ", ".join(f"--{name}={old} (now {new})" for name, old, new in changed)
        raise _refuse(model_dir, f"holds a run with other flags: {listed}; use the same flags "
                                 "to resume, --restart to start afresh, or another --model_dir")


def record(config: TrainConfig) -> None:
    """Writes ``config.json`` and ``flags.txt`` into ``config.model_dir``."""
    os.makedirs(config.model_dir, exist_ok=True)
    write_atomic(os.path.join(config.model_dir, CONFIG_FILE),
                 json.dumps(config.to_dict(), indent=1, sort_keys=True))
    write_atomic(os.path.join(config.model_dir, FLAGS_FILE), config.to_flags())


def clear(model_dir: str) -> None:
    """Deletes the run state of :data:`RUN_STATE` from ``model_dir`` (other files stay) and
    logs what it deleted; refuses (:class:`RunDirError`, nothing deleted) an ``export``
    folder that holds anything but an export."""
    present = [name for name in RUN_STATE if os.path.lexists(os.path.join(model_dir, name))]
    if not present:
        return
    problem = "export" in present and export_dir_problem(os.path.join(model_dir, "export"))
    if problem:
        raise _refuse(model_dir, f"--restart would delete {os.path.join(model_dir, 'export')}, "
                                 f"which {problem}; move them, nothing was deleted")
    epochs = backup.epochs_done(os.path.join(model_dir, "backup")) if "backup" in present else 0
    logging.warning("--restart: deleting %s from %s%s", ", ".join(present), model_dir,
                    f" (the backup of {epochs} epochs)" if epochs else "")
    for name in present:
        path = os.path.join(model_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def trim_history(path: str, epochs_done: int) -> None:
    """Keeps the header and the rows of epochs ``0 .. epochs_done - 1`` of the
    ``keras.callbacks.CSVLogger`` file ``path``: rows of later epochs, or a row cut short by
    a kill, belong to epochs that will be trained again."""
    if not os.path.isfile(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # cut short
    if not lines:
        os.remove(path)
        return
    width = len(next(csv.reader(lines[:1])))

    def done(line: str) -> bool:
        row = next(csv.reader([line]), [])
        return len(row) == width and row[0].isdigit() and int(row[0]) < epochs_done

    kept = lines[:1] + [line for line in lines[1:] if done(line)]
    if "".join(kept) != text:
        write_atomic(path, "".join(kept))
