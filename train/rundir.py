"""The run directory (``--model_dir``): one run's configuration, refused when a resume differs.

``config.json`` records the flags of the run. Rerunning with the same ``--model_dir``
resumes the run, and must describe the same run: a flag of :data:`FIXED` (what is trained,
on which examples, in which order) that differs from the recorded value is refused in one
line naming every such flag with its old and new value. ``--restart`` deletes the run's
state (backup, logs, history, config) and starts afresh. The other flags (:data:`MAY_CHANGE`:
more epochs, the learning-rate schedule, the strategy, where to export, ...) may change on
resume; ``config.json`` then records the new values.

Example:
    >>> import tempfile, types
    >>> d = tempfile.mkdtemp()
    >>> values = types.SimpleNamespace(model_dir=d, model="digits", time_steps=4, epochs=8)
    >>> prepare(values, restart=False); record(values)
    >>> values.time_steps = 8
    >>> differences(read_config(d), values)
    [('time_steps', 4, 8)]
    >>> prepare(values, restart=True)       # prepare(values, restart=False) raises RunDirError
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

CONFIG_FILE = "config.json"
#: What makes a run: its model, its examples and their order (the resumed epochs must see the
#: batches the uninterrupted run would have seen), and the step -> epoch map of the
#: learning-rate schedule (``batch_size``).
FIXED = ("model", "dataset", "image_size", "time_steps", "decode", "mode", "dropout",
         "width_divisor", "validation_split", "augment", "seed", "batch_size", "mixed_precision",
         "skip_bad_images")
#: May change when resuming: how long, how fast, where and how it runs.
MAY_CHANGE = ("epochs", "learning_rate", "lr_schedule", "lr_step_epochs", "lr_step_factor",
              "weight_decay", "strategy", "tpu", "cpu_devices", "jit_compile", "deterministic",
              "data_dir", "export_dir", "export_mode")
#: What ``--restart`` deletes (``export``: the default ``--export_dir``). In a multi-worker
#: cluster every worker clears its own directory (the chief ``--model_dir``).
RUN_STATE = ("backup", "logs", "history.csv", "flags.txt", CONFIG_FILE, "export")


class RunDirError(ValueError):
    """``--model_dir`` holds another run; ``str()`` is the one-line message."""


def config_of(values: Any) -> dict:
    """The flags of :data:`FIXED` and :data:`MAY_CHANGE` that ``values`` has, as a dict."""
    return {name: getattr(values, name) for name in FIXED + MAY_CHANGE if hasattr(values, name)}


def read_config(model_dir: str) -> dict | None:
    """The recorded configuration of ``model_dir``, or None if it has none."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def differences(recorded: dict, values: Any) -> list[tuple[str, Any, Any]]:
    """``(flag, recorded value, new value)`` for every flag of :data:`FIXED` that differs."""
    now = config_of(values)
    return [(name, recorded[name], now[name]) for name in FIXED
            if name in recorded and name in now and recorded[name] != now[name]]


def has_state(model_dir: str) -> bool:
    """True if ``model_dir`` holds a backup (a run that resumes)."""
    return os.path.isdir(os.path.join(model_dir, "backup"))


def prepare(values: Any, restart: bool) -> None:
    """Checks (or, with ``restart``, clears) ``values.model_dir`` before a run starts.

    Only a directory with a backup (a run that would resume) is checked: a run that
    failed before its first epoch ended leaves nothing to resume.

    Raises:
      RunDirError: the directory holds a resumable run whose :data:`FIXED` flags differ,
        or a backup without ``config.json`` (written before runs recorded their flags),
        while not restarting -- rerun with ``--restart`` or another ``--model_dir``.
    """
    model_dir = values.model_dir
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise RunDirError(f"--model_dir={model_dir}: exists and is not a directory")
    if restart:
        clear(model_dir)
    if not has_state(model_dir):
        return
    recorded = read_config(model_dir)
    if recorded is not None:
        changed = differences(recorded, values)
        if changed:
            listed = ", ".join(f"--{name}={old} (now {new})" for name, old, new in changed)
            raise RunDirError(f"--model_dir={model_dir}: holds a run with other flags: {listed}; "
                              "use the same flags to resume, --restart to start afresh, or "
                              "another --model_dir")
    else:
        raise RunDirError(f"--model_dir={model_dir}: holds a backup but no {CONFIG_FILE} to "
                          "check the flags against; --restart to start afresh, or another "
                          "--model_dir")


def record(values: Any) -> None:
    """Writes ``config.json`` (:func:`config_of`) into ``values.model_dir``."""
    os.makedirs(values.model_dir, exist_ok=True)
    with open(os.path.join(values.model_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(config_of(values), f, indent=1, sort_keys=True)


def clear(model_dir: str) -> None:
    """Deletes the run state of :data:`RUN_STATE` from ``model_dir`` (other files stay)."""
    for name in RUN_STATE:
        path = os.path.join(model_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
