"""Export at the end of training: a SavedModel for serving and evaluation, and a ``.keras`` file.

The export is atomic (``tandem_keras.export_model``): written beside ``export_dir`` and
renamed into place when complete, so the export of a resumed run that fails (a full disk)
or is interrupted (SIGINT, SIGTERM) leaves the earlier export as it was, and a first run
killed while exporting leaves no export at all.

What the export records of the data (``training``) identifies it wherever it lies: a
folder by its name and the fingerprint of its files (``common.datasets.Source.identity``),
never by the path of the training machine.
"""
from __future__ import annotations

import os
import re
from typing import Any, Optional

import keras

from tandem_keras import _atomic
from tandem_keras.export import METADATA_FILE, export_model

KERAS_FILE = "model.keras"


class ExportError(RuntimeError):
    """Writing the export failed (a full disk, ...); the message (one line) says what and
    whether an earlier export was kept."""


def export_dir_problem(export_dir: str) -> Optional[str]:
    """Why the export cannot go to ``export_dir`` (None: it can): it holds files that are
    not an earlier export's (checked before training, so that none is wasted)."""
    return _atomic.replacement_problem(export_dir, manifest_file=f"assets/{METADATA_FILE}")


def export(model: keras.Model, export_dir: str, mode: str | None = None,
           training: dict | None = None, source: Any = None) -> None:
    """Writes the SavedModel to ``export_dir`` and the Keras model to ``export_dir/model.keras``.

    The SavedModel comes from ``tandem_keras.export.export_model``: the serving signature
    ``images -> logits`` and ``serve_activity`` with each spiking layer's spike counts, so
    that SynOps can be counted from the SavedModel alone. ``mode`` exports the model
    switched to that mode (``"tandem"`` after ``quantized`` training: constrain-then-train).
    The ``.keras`` file holds the model as trained, for further training
    (``keras.models.load_model``). ``training`` (the dataset split) goes into the
    SavedModel's metadata, where ``python -m eval --split=validation`` reads it, with the
    dataset's identity (``source.identity``: a folder's name and fingerprint, not its path;
    ``source``: the ``common.datasets.Source`` trained on).

    Raises:
      ValueError: a weight is non-finite (nothing is written).
      ExportError: writing failed, an earlier export at ``export_dir`` is kept; or
        ``export_dir`` holds files that are not an earlier export's
        (:func:`export_dir_problem`), nothing is written or deleted.
    """
    if training is not None and source is not None:
        training = {**training, **source.identity}
    existed = os.path.isdir(export_dir)
    try:
        export_model(model, export_dir, mode=mode, training=training, keras_file=KERAS_FILE)
    except ValueError:
        raise
    except FileExistsError as error:  # files of the user's appeared there since the run began
        raise ExportError(f"{error}; nothing was exported") from error
    except Exception as error:  # noqa: BLE001 - OSError, TensorFlow's and h5py's errors
        problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        problem = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", problem)  # TensorFlow's op context
        kept = "the earlier export there is kept" if existed else "nothing was exported"
        raise ExportError(f"writing the export to {export_dir} failed ({problem}); {kept}") from error
