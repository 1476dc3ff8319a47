"""Export at the end of training: a SavedModel for serving and evaluation, and a ``.keras`` file.

The export is atomic (``tandem_keras.export_model``): written beside ``export_dir`` and
renamed into place when complete, so the export of a resumed run that fails (a full disk)
or is interrupted (SIGINT, SIGTERM) leaves the earlier export as it was, and a first run
killed while exporting leaves no export at all.

What the export records of the data (``training``) identifies it wherever it lies: a
folder by its name and the fingerprint of its files (``train.data.Source.identity``),
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


def portable_training(training: Optional[dict], source: Any = None) -> Optional[dict]:
    """``training`` with the dataset named as ``source.identity`` names it (a folder: its
    name, fingerprint, number of files and classes, not its path). Without ``source`` a
    ``folder:PATH`` dataset is listed again to find its identity (every file counted)."""
    if training is None:
        return None
    training = dict(training)
    if source is not None:
        training.update(source.identity)
    elif str(training.get("dataset", "")).startswith("folder:"):
        from train import folders  # noqa: PLC0415

        path = training["dataset"][len("folder:"):]
        files, labels, classes = folders.list_folder(path)
        training.update({
            "dataset": f"folder:{os.path.basename(os.path.normpath(os.path.abspath(path)))}",
            "folder_fingerprint": folders.fingerprint(path, files, labels, classes),
            "folder_files": len(files), "classes": classes})
    return training


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
    dataset's identity (:func:`portable_training`; ``source``: the ``train.data.Source``).

    Raises:
      ValueError: a weight is non-finite (nothing is written).
      ExportError: writing failed, an earlier export at ``export_dir`` is kept; or
        ``export_dir`` holds files that are not an earlier export's
        (:func:`export_dir_problem`), nothing is written or deleted.
    """
    training = portable_training(training, source)
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
