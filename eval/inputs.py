"""What ``python -m eval`` evaluates: the SavedModel (checked) and the batches of a split.

A SavedModel with a NaN or infinite weight is refused. The dataset and validation split
default to those the export recorded of its training (``python -m train`` writes them
into ``assets/tandem_keras.json``), and a different one is refused for the ``train`` and
``validation`` splits, whose examples are defined by that split.

Example:
    >>> model = open_model("/tmp/digits/export")                      # doctest: +SKIP
    >>> resolve_split(model, None, "validation", None)                # doctest: +SKIP
    ('digits', 0.1)
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

import numpy as np

from tandem_keras import export


class EvalError(ValueError):
    """Bad input to evaluation; the message (one line) says what is wrong."""


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"eval: warning: {message}", file=sys.stderr)


def open_model(path: str) -> export.LoadedModel:
    """Opens a SavedModel; ``EvalError`` if ``path`` is not one."""
    if not os.path.isdir(path):
        raise EvalError(f"--saved_model {path!r} is not a directory")
    try:
        model = export.LoadedModel(path)
    except ValueError as error:
        raise EvalError(str(error)) from None
    bad = model.non_finite_variables()
    if bad:
        raise EvalError(f"--saved_model {path!r} has NaN or infinite weights ({', '.join(bad[:3])}"
                        f"{', ...' if len(bad) > 3 else ''}): its training diverged; not evaluated")
    return model


def resolve_split(model: export.LoadedModel, dataset: Optional[str], split: str,
                  validation_split: Optional[float]) -> tuple[str, float]:
    """``(dataset, validation_split)`` to evaluate ``model`` with.

    ``None`` takes what the export recorded of its training (``python -m train`` records
    the dataset and its validation split), else ``"cifar10"`` and 0.1. For the ``train``
    and ``validation`` splits a given value that differs from the recorded one is refused
    (``EvalError``): the examples would not be the ones held out in training.
    """
    recorded = model.training or {}
    if dataset is None:
        dataset = recorded.get("dataset", "cifar10")
    if validation_split is None:
        validation_split = recorded.get("validation_split", 0.1)
    if split in ("train", "validation") and recorded:
        if "dataset" in recorded and dataset != recorded["dataset"]:
            raise EvalError(f"--dataset={dataset}: the model {model.export_dir!r} was trained on "
                            f"--dataset={recorded['dataset']}; its --split={split} is only "
                            "defined there")
        if ("validation_split" in recorded
                and not np.isclose(validation_split, recorded["validation_split"])):
            raise EvalError(f"--validation_split={validation_split}: the model "
                            f"{model.export_dir!r} was trained with --validation_split="
                            f"{recorded['validation_split']} (leave the flag out to use it)")
    return dataset, float(validation_split)


def load_batches(dataset: str, split: str, batch_size: int, input_shape: Optional[Sequence[int]],
                 data_dir: Optional[str] = None, validation_split: float = 0.1):
    """``(tf.data batches of (images, labels), number of examples, number of classes)``.

    Uses ``train.data`` / ``train.pipeline`` (images as float32 pixel values, the models
    normalize them). ``EvalError`` if the images do not have the model's input shape.
    """
    try:
        from train import data, pipeline
    except ImportError as error:
        raise EvalError(f"loading datasets needs the train package (train/data.py): {error}") from None
    image_size = None
    if input_shape is not None and dataset == "imagenet2012":
        image_size = int(input_shape[0])
    try:
        source = data.load(dataset, data_dir=data_dir, validation_split=validation_split,
                           image_size=image_size)
        _, count = source.split(split)
    except data.DatasetError as error:
        raise EvalError(str(error)) from None
    if input_shape is not None and tuple(source.image_shape) != tuple(input_shape):
        raise EvalError(f"dataset {dataset!r} has images of shape {tuple(source.image_shape)} but "
                        f"the model expects {tuple(input_shape)}")
    return pipeline.eval_batches(source, split, batch_size=batch_size), count, source.num_classes
