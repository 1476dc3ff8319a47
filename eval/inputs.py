"""What ``python -m eval`` evaluates: the SavedModel (checked) and the examples of a split.

A SavedModel that is incomplete, damaged or has a NaN or infinite weight is refused. The
dataset and validation split default to those the export recorded of its training
(``python -m train`` writes them into ``assets/tandem_keras.json``). The ``train`` and
``validation`` splits are only defined on the data the model was trained on: a TFDS
dataset or ``digits`` by its name, a folder by its fingerprint (``common.folders``), so
that the same images anywhere give the same split and another folder is refused. The
split ``all`` is every example of any dataset (a separate folder of test images, or every
TFDS split); a folder's classes are then matched to the model's by name.

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

from common import datasets, pipeline
from tandem_keras import export

FOLDER = "folder:"
DEFAULT_DATA_DIR = "(TFDS's default)"


class EvalError(ValueError):
    """Bad input to evaluation; the message (one line) says what is wrong."""


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"eval: warning: {message}", file=sys.stderr)


def open_model(path: str) -> export.LoadedModel:
    """Opens a SavedModel; ``EvalError`` if ``path`` is not one, or an incomplete one."""
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


def _trained_on(recorded: dict) -> str:
    """``a folder named 'train' (50,000 images, 10 classes)`` or ``--dataset=cifar10``."""
    dataset = recorded.get("dataset", "?")
    if not dataset.startswith(FOLDER):
        return f"--dataset={dataset}"
    name = dataset[len(FOLDER):]
    files, classes = recorded.get("folder_files"), recorded.get("classes")
    facts = [f"{files:,} images" if files is not None else None,
             f"{len(classes)} classes" if classes else None]
    facts = [f for f in facts if f]
    return f"a folder named {name!r}" + (f" ({', '.join(facts)})" if facts else "")


def resolve_split(model: export.LoadedModel, dataset: Optional[str], split: str,
                  validation_split: Optional[float]) -> tuple[str, float]:
    """``(dataset, validation_split)`` to evaluate ``model`` with.

    ``None`` takes what the export recorded of its training (``python -m train`` records
    the dataset and its validation split), else ``"cifar10"`` and 0.1; a folder must be
    given (``--dataset=folder:DIR``): the export records its name, not where it lies.
    For the ``train`` and ``validation`` splits another TFDS dataset or validation split
    than the recorded one is refused (``EvalError``); a folder is checked after loading
    (:func:`check_identity`). A folder has no ``test`` split.
    """
    recorded = model.training or {}
    trained = recorded.get("dataset")
    if dataset is None:
        if trained is None:
            dataset = "cifar10"
        elif trained.startswith(FOLDER):
            raise EvalError(f"--dataset=folder:DIR is needed: the model {model.export_dir!r} was "
                            f"trained on {_trained_on(recorded)}; pass your copy of it for "
                            "--split=train or validation, or any folder of images of its "
                            "classes with --split=all")
        else:
            dataset = trained
    if validation_split is None:
        validation_split = recorded.get("validation_split", 0.1)
    if split == "test" and dataset.startswith(FOLDER):
        raise EvalError(f"--dataset={dataset}: a folder has no test split; --split=all "
                        "evaluates every image of a folder (e.g. a folder of test images)")
    if split in ("train", "validation") and recorded:
        both_folders = dataset.startswith(FOLDER) and (trained or "").startswith(FOLDER)
        if trained is not None and dataset != trained and not both_folders:
            raise EvalError(f"--dataset={dataset}: the model {model.export_dir!r} was trained on "
                            f"{_trained_on(recorded)}; its --split={split} is only defined "
                            "there (--split=all evaluates every example of a dataset)")
        if ("validation_split" in recorded
                and not np.isclose(validation_split, recorded["validation_split"])):
            raise EvalError(f"--validation_split={validation_split}: the model "
                            f"{model.export_dir!r} was trained with --validation_split="
                            f"{recorded['validation_split']} (leave the flag out to use it)")
    return dataset, float(validation_split)


def check_identity(model: export.LoadedModel, dataset: str, split: str, source) -> None:
    """For ``train``/``validation`` of a folder: ``source`` must hold the images the model
    was trained on (its recorded fingerprint). ``EvalError`` otherwise."""
    recorded = model.training or {}
    trained = recorded.get("dataset") or ""
    if split not in ("train", "validation") or not (dataset.startswith(FOLDER)
                                                    and trained.startswith(FOLDER)):
        return
    found = source.identity
    if found.get("folder_fingerprint") != recorded.get("folder_fingerprint"):
        raise EvalError(f"--dataset={dataset}: not the images the model {model.export_dir!r} was "
                        f"trained on, {_trained_on(recorded)}; its --split={split} is only defined "
                        f"there (--split=all evaluates every image of a folder); this folder has "
                        f"{found.get('folder_files', 0):,} images of {len(found.get('classes', []))} "
                        f"classes, fingerprint {found.get('folder_fingerprint')} (trained: "
                        f"{recorded.get('folder_fingerprint')})")


def load_batches(dataset: str, split: str, batch_size: int, input_shape: Optional[Sequence[int]],
                 data_dir: Optional[str] = None, validation_split: float = 0.1,
                 model: Optional[export.LoadedModel] = None,
                 skip_bad_images: Optional[bool] = None):
    """``(tf.data batches of (images, labels), number of examples, number of classes)``.

    Uses ``common.datasets`` / ``common.pipeline`` (images as float32 pixel values, the models
    normalize them); folder images are resized to the model's input size, and labelled by
    the class names the model recorded. ``EvalError`` if the images do not have the model's
    input shape, or (with ``model``) are not the training images :func:`check_identity`
    requires.
    """
    recorded = (model.training if model is not None else None) or {}
    options = {}
    if input_shape is not None and dataset == "imagenet2012":
        options["image_size"] = int(input_shape[0])
    if dataset.startswith(FOLDER):
        if input_shape is not None:
            options["image_size"] = (int(input_shape[0]), int(input_shape[1]))
        if recorded.get("classes"):
            options["classes"] = recorded["classes"]
        options["skip_bad_images"] = bool(recorded.get("skip_bad_images", False)
                                          if skip_bad_images is None else skip_bad_images)
    try:
        source = datasets.load(dataset, data_dir=data_dir, validation_split=validation_split,
                               **options)
        _, count = source.split(split)
    except datasets.DatasetError as error:
        if error.flag == "data_dir":
            raise EvalError(f"--data_dir={data_dir or DEFAULT_DATA_DIR}: {error}") from None
        raise EvalError(str(error)) from None
    if model is not None:
        check_identity(model, dataset, split, source)
    if input_shape is not None and tuple(source.image_shape) != tuple(input_shape):
        raise EvalError(f"dataset {dataset!r} has images of shape {tuple(source.image_shape)} but "
                        f"the model expects {tuple(input_shape)}")
    return pipeline.eval_batches(source, split, batch_size=batch_size), count, source.num_classes
