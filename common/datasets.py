"""Datasets for training and evaluation: TFDS (cifar10, imagenet2012), image folders, digits.

Every dataset is returned as a :class:`Source`: unbatched ``(image, label)`` examples per
split, with images float32 pixel values in ``[0, 255]`` (``[H, W, C]``; ImageNet images
keep their own size until the pipeline crops them) and int32 labels. The models normalize
images themselves (``models``), so the same images feed training, evaluation and the
exported SavedModel.

Dataset names (``--dataset``):

- ``cifar10``: TFDS ``cifar10``; ``train`` and ``validation`` split the 50k TFDS training
  images (45k/5k for ``validation_split=0.1``), ``test`` is the TFDS test split.
- ``imagenet2012``: TFDS ``imagenet2012`` (place the archives in TFDS's manual download
  directory, ``<data_dir>/downloads/manual``); ``test`` is the TFDS validation split.
- ``folder:PATH``: a directory with one sub-folder of PNG/JPEG images per class
  (``common.folders``: what is a class, what is refused); images are resized to the first
  image's size (or ``image_size``). No ``test`` split: a separate folder of test images is
  evaluated with the split ``all``. Every file is decoded once up front
  (``common.folders.unreadable_images``): files that cannot be decoded refuse the folder,
  naming them (or are left out and logged, ``skip_bad_images``); at least 2 classes. The
  dataset's identity (:attr:`Source.identity`, which an export records) is the folder's name
  and the fingerprint of its files (``common.folders.fingerprint``), not its path.
- ``digits``: scikit-learn's bundled 8x8 digits (no download); a fixed stratified 80/20
  train/test split, the validation part held out of the 80%.

The train/validation partition is fixed (it does not depend on the training seed, nor on
where a folder lies), so ``python -m eval --split=validation`` sees exactly the held-out
examples. The split ``all`` is every example of the dataset (every split).

Folders are not read by ``keras.utils.image_dataset_from_directory``: its train/validation
split is another partition than the one exports record (it would change which images a
trained model held out), it counts the images of hidden folders inside a class folder, and
twice those of a folder reached twice through links, and an undecodable file fails in the
middle of an epoch instead of being named before training. Its decoder is the one used here
(``tf.io.decode_image`` and a bilinear ``tf.image.resize``). TFDS builds and reads the TFDS
datasets.

Example:
  >>> from common import datasets
  >>> source = datasets.load("digits", validation_split=0.1)
  >>> source.num_train, source.num_validation, source.image_shape
  (1293, 144, (8, 8, 1))
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from common import folders, tfds_prepare

SPLIT_SEED = 0  # fixed partition seed, independent of --seed
#: Largest image side used as the model's input size without ``image_size``.
MAX_SIDE = 512


class DatasetError(ValueError):
    """A dataset that cannot be used; the message says why, ``flag`` names the flag at fault
    (``"dataset"``, or ``"data_dir"`` where TFDS cannot write)."""

    def __init__(self, message: str, flag: str = "dataset"):
        super().__init__(message)
        self.flag = flag


@dataclasses.dataclass
class Source:
    """A dataset ready for :mod:`common.pipeline`.

    Attributes:
      name: the dataset name as given.
      splits: ``split -> (examples, count)``, unbatched ``(float32 image, int32 label)``.
      num_classes: number of classes.
      image_shape: the model's input shape ``(H, W, C)``.
      augment: augmentation policy for training, ``"cifar"``, ``"imagenet"`` or ``"none"``.
      cache: whether decoded examples fit in memory (``Dataset.cache()``).
      identity: what identifies the dataset wherever it lies, for an export's metadata:
        ``{"dataset": name}``; for folders ``"folder:<folder name>"`` and the
        ``folder_fingerprint``, ``folder_files`` and ``classes`` (:mod:`common.folders`).
    """

    name: str
    splits: dict[str, tuple[tf.data.Dataset, int]]
    num_classes: int
    image_shape: tuple[int, int, int]
    augment: str
    cache: bool
    identity: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.identity = {"dataset": self.name, **self.identity}

    @property
    def num_train(self) -> int:
        return self.splits["train"][1]

    @property
    def num_validation(self) -> int:
        return self.splits["validation"][1] if "validation" in self.splits else 0

    def split(self, name: str) -> tuple[tf.data.Dataset, int]:
        """Examples and count of a split (``"all"``: of every split, one after the other);
        ``DatasetError`` if the dataset has no such split."""
        if name == "all":
            parts = list(self.splits.values())
            examples = functools.reduce(tf.data.Dataset.concatenate, [ds for ds, _ in parts])
            return examples, sum(count for _, count in parts)
        if name not in self.splits:
            raise DatasetError(
                f"dataset {self.name!r} has no split {name!r}; it has {', '.join(self.splits)}"
            )
        return self.splits[name]


def load(
    dataset: str,
    *,
    data_dir: str | None = None,
    validation_split: float = 0.1,
    image_size: int | tuple[int, int] | None = None,
    skip_bad_images: bool = False,
    classes: Sequence[str] | None = None,
) -> Source:
    """Loads ``dataset`` (see the module docstring) with ``validation_split`` held out of train.

    Args:
      dataset: ``"cifar10"``, ``"imagenet2012"``, ``"folder:PATH"`` or ``"digits"``.
      data_dir: TFDS data directory (``None``: TFDS default).
      validation_split: fraction of the training examples held out, in ``[0, 1)``.
      image_size: square size images are resized to (folders; or ``(height, width)``) or
        cropped to (ImageNet); ``None`` keeps the dataset's own (ImageNet: 224).
      skip_bad_images: folders: leave out (and log) the files that cannot be decoded
        instead of refusing the folder.
      classes: folders: the class names labels index (those a model was trained on); the
        folder's classes must be among them (a test folder may lack some). ``None``: the
        folder's own, at least 2.

    Raises:
      DatasetError: unknown dataset, a folder that is not a dataset (``common.folders``), with
        files that cannot be decoded (unless ``skip_bad_images``), fewer than 2 classes or
        classes outside ``classes``, a first image above :data:`MAX_SIDE` pixels without
        ``image_size``, a split fraction that leaves no training examples, a TFDS dataset
        that needs a manual download.
    """
    if not 0.0 <= validation_split < 1.0:
        raise DatasetError(f"validation_split must be in [0, 1), got {validation_split}")
    if dataset == "digits":
        return _digits(validation_split)
    if dataset.startswith("folder:"):
        return _folder(dataset[len("folder:"):], validation_split, image_size, skip_bad_images,
                       classes)
    if dataset in ("cifar10", "imagenet2012"):
        return _tfds(dataset, data_dir, validation_split, image_size)
    raise DatasetError(
        f"unknown dataset {dataset!r}; use cifar10, imagenet2012, digits or folder:PATH"
    )


def _num_held_out(total: int, validation_split: float) -> int:
    held_out = int(round(total * validation_split))
    if held_out >= total:
        raise DatasetError(f"--validation_split={validation_split} holds out {held_out} of the "
                           f"{total} training examples and leaves none to train on")
    return held_out


def _from_arrays(images: np.ndarray, labels: np.ndarray) -> tuple[tf.data.Dataset, int]:
    ds = tf.data.Dataset.from_tensor_slices(
        (images.astype(np.float32), labels.astype(np.int32))
    )
    return ds, len(labels)


def _digits(validation_split: float) -> Source:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0))[..., None]  # 0..16 -> 0..255, [N, 8, 8, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target, test_size=0.2, random_state=SPLIT_SEED, stratify=bunch.target
    )
    n_val = _num_held_out(len(y_train), validation_split)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y_train))
    train_idx, val_idx = order[: len(order) - n_val], order[len(order) - n_val:]
    splits = {"train": _from_arrays(x_train[train_idx], y_train[train_idx])}
    if n_val:
        splits["validation"] = _from_arrays(x_train[val_idx], y_train[val_idx])
    splits["test"] = _from_arrays(x_test, y_test)
    return Source("digits", splits, 10, (8, 8, 1), augment="none", cache=True)


def _readable(path: str, files: list[str], labels: list[int], classes: list[str],
              skip_bad_images: bool) -> tuple[list[str], list[int], list[str]]:
    """Refuses (or, with ``skip_bad_images``, leaves out) the files that cannot be decoded;
    returns files, labels and classes kept (a class left without images is dropped, and
    named in the warning)."""
    bad = set(folders.unreadable_images(files))
    if bad and not skip_bad_images:
        raise DatasetError(
            f"folder {path!r}: {len(bad)} of {len(files)} image files cannot be decoded: "
            f"{folders.describe(sorted(bad), path)} (remove them, or pass "
            "--skip_bad_images to leave them out)")
    if bad:
        kept = [(f, label) for f, label in zip(files, labels) if f not in bad]
        used = sorted({label for _, label in kept})  # classes that still have images
        dropped = [c for i, c in enumerate(classes) if i not in used]
        logging.warning("folder %r: leaving out %d of %d image files that cannot be decoded: %s%s",
                        path, len(bad), len(files), folders.describe(sorted(bad), path, len(bad)),
                        f"; class{'es' if len(dropped) > 1 else ''} {', '.join(dropped)} "
                        "left without images" if dropped else "")
        files = [f for f, _ in kept]
        labels = [used.index(label) for _, label in kept]
        classes = [classes[c] for c in used]
    return files, labels, classes


def _relabel(path: str, labels: list[int], classes: list[str],
             trained: Sequence[str]) -> list[int]:
    """Labels as indices into ``trained`` (the classes a model was trained on), by name."""
    unknown = [c for c in classes if c not in trained]
    if unknown:
        raise DatasetError(
            f"folder {path!r} has class folder{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown[:5])}{', ...' if len(unknown) > 5 else ''} that the model was "
            f"not trained on (its classes: {', '.join(trained[:10])}"
            f"{', ...' if len(trained) > 10 else ''})")
    return [trained.index(classes[label]) for label in labels]


def _image_size(path: str, first: str, image_size: int | tuple[int, int] | None) -> tuple[int, int]:
    """``(height, width)`` images are resized to: ``image_size``, else the first image's size
    (refused above :data:`MAX_SIDE`, where the model would be built at that size)."""
    if image_size:
        return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    image = tf.io.decode_image(tf.io.read_file(first), channels=3, expand_animations=False)
    height, width = (int(n) for n in image.shape[:2])
    if max(height, width) > MAX_SIDE:
        raise DatasetError(
            f"folder {path!r}: its first image, {os.path.relpath(first, path)}, is "
            f"{height}x{width} pixels and the model is built at the size of the images; "
            f"above {MAX_SIDE} pixels pass --image_size (e.g. --image_size=224) to resize them")
    return height, width


def _folder(path: str, validation_split: float, image_size: int | tuple[int, int] | None,
            skip_bad_images: bool = False, classes: Sequence[str] | None = None) -> Source:
    try:
        listed = folders.list_folder(path)
    except folders.FolderError as error:
        raise DatasetError(str(error)) from None
    files, labels, found = _readable(path, *listed, skip_bad_images)
    fingerprint = folders.fingerprint(path, files, labels, found)
    if classes is None:
        if len(found) < 2:
            raise DatasetError(
                f"folder {path!r} has {len(found)} class{'' if len(found) == 1 else 'es'} with "
                f"images ({', '.join(found) or '-'}); "
                "a classifier needs at least 2 class sub-folders (PATH/<class>/*.png)")
        classes = found
    else:
        labels = _relabel(path, labels, found, list(classes))
    height, width = _image_size(path, files[0], image_size)

    def decode(file: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
        image = tf.image.resize(image, (height, width))  # float32, identity if same size
        return tf.ensure_shape(image, (height, width, 3)), label

    order = np.random.default_rng(SPLIT_SEED).permutation(len(files))
    n_val = _num_held_out(len(files), validation_split)
    parts = {"train": order[: len(order) - n_val], "validation": order[len(order) - n_val:]}
    splits = {}
    for split, idx in parts.items():
        if len(idx) == 0:
            continue
        ds = tf.data.Dataset.from_tensor_slices(
            (np.asarray(files)[idx], np.asarray(labels, np.int32)[idx])
        ).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        splits[split] = (ds, len(idx))
    fits_in_memory = len(files) * height * width * 3 * 4 < 2 * 1024**3
    name = os.path.basename(os.path.normpath(os.path.abspath(path)))
    identity = {"dataset": f"folder:{name}", "folder_fingerprint": fingerprint,
                "folder_files": len(files), "classes": list(classes),
                "skip_bad_images": bool(skip_bad_images)}
    return Source(f"folder:{path}", splits, len(classes), (height, width, 3),
                  augment="cifar", cache=fits_in_memory, identity=identity)


def _tfds(name: str, data_dir: str | None, validation_split: float,
          image_size: int | None) -> Source:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
        problem = tfds_prepare.prepare(builder, name)
    except (OSError, tf.errors.OpError) as error:  # e.g. a read-only --data_dir
        text = str(error).strip().splitlines()
        raise DatasetError(f"TFDS cannot prepare {name!r} there ({text[0] if text else type(error).__name__}); "
                           f"use a --data_dir it can write to, or one where {name} is prepared",
                           flag="data_dir") from None
    if problem:
        raise DatasetError(problem)
    info = builder.info
    if "train" in info.splits:
        total = info.splits["train"].num_examples
    else:  # no recorded split sizes (e.g. tfds.testing.mock_data): count the examples
        total = int(builder.as_dataset(split="train").cardinality())
    n_val = _num_held_out(total, validation_split)
    split_names = {"train": f"train[:{total - n_val}]"}
    if n_val:
        split_names["validation"] = f"train[{total - n_val}:]"
    split_names["test"] = "test" if name == "cifar10" else "validation"

    def cast(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(image, tf.float32), tf.cast(label, tf.int32)

    splits = {}
    for split, tfds_split in split_names.items():
        ds = builder.as_dataset(split=tfds_split, as_supervised=True, shuffle_files=False)
        count = int(ds.cardinality())
        if count < 0:  # unknown cardinality: trust the dataset info
            count = info.splits[tfds_split].num_examples
        if count == 0:
            raise DatasetError(f"TFDS {name!r} split {tfds_split!r} is empty")
        splits[split] = (ds.map(cast, num_parallel_calls=tf.data.AUTOTUNE), count)
    num_classes = info.features["label"].num_classes
    if name == "cifar10":
        return Source(name, splits, num_classes, (32, 32, 3), augment="cifar", cache=True)
    size = image_size or 224
    return Source(name, splits, num_classes, (size, size, 3), augment="imagenet", cache=False)
