"""Export at the end of training: a SavedModel for serving and evaluation, and a ``.keras`` file."""
from __future__ import annotations

import os

import keras

from tandem_keras.export import export_model

KERAS_FILE = "model.keras"


def export(model: keras.Model, export_dir: str, mode: str | None = None,
           training: dict | None = None) -> None:
    """Writes the SavedModel to ``export_dir`` and the Keras model to ``export_dir/model.keras``.

    The SavedModel comes from ``tandem_keras.export.export_model``: the serving signature
    ``images -> logits`` and ``serve_activity`` with each spiking layer's spike counts, so
    that SynOps can be counted from the SavedModel alone. ``mode`` exports the model
    switched to that mode (``"tandem"`` after ``quantized`` training: constrain-then-train).
    The ``.keras`` file holds the model as trained, for further training
    (``keras.models.load_model``). ``training`` (the dataset split) goes into the
    SavedModel's metadata, where ``python -m eval --split=validation`` reads it.
    A model with a non-finite weight is refused (``ValueError``) before anything is written.
    """
    export_model(model, export_dir, mode=mode, training=training)  # creates export_dir
    model.save(os.path.join(export_dir, KERAS_FILE))
