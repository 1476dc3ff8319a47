"""``tf.data`` input pipelines: method §8 augmentation, deterministic per-epoch shuffling, batching.

Training data is a function of ``(seed, epoch)`` only: epoch ``e`` shuffles with a seed
derived from ``(seed, e)`` and augments example ``i`` with the stateless seed
``(seed, e, i)``. A run resumed at epoch ``e`` therefore sees exactly the batches an
uninterrupted run sees from epoch ``e`` on. Decoding and augmentation run in parallel
(``num_parallel_calls=AUTOTUNE``), decoded examples are cached in memory where they fit, and
batches are prefetched.

Augmentation (method §8):

- ``"cifar"``: zero-pad by ``H/8`` pixels (4 for 32x32), random crop back to ``H x W``,
  random horizontal flip.
- ``"imagenet"``: random-resized crop (area 8%-100%, aspect ratio 3/4-4/3) to the output
  size, random horizontal flip; evaluation resizes the shorter side to ``size * 256/224``
  and takes the central ``size x size`` crop.
- ``"none"``: images as they are.

Example:
  >>> from common import datasets, pipeline
  >>> source = datasets.load("digits")
  >>> batches = pipeline.train_batches(source, batch_size=32, seed=0, start_epoch=0, epochs=1)
  >>> images, labels = next(iter(batches))
  >>> images.shape
  TensorShape([32, 8, 8, 1])
"""
from __future__ import annotations

import functools

import tensorflow as tf

from common.datasets import Source

AUGMENTATIONS = ("cifar", "imagenet", "none")


def _epoch_seed(seed: int, epoch: int) -> int:
    # A distinct seed per (seed, epoch), far from the seeds of other runs' epochs.
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


def augment_cifar(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Pad by H/8 with zeros, random-crop back to H x W, random horizontal flip (stateless)."""
    pad = max(image.shape[0] // 8, 1)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    seeds = tf.random.experimental.stateless_split(seed, 2)
    image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])


def augment_imagenet(image: tf.Tensor, seed: tf.Tensor, size: int) -> tf.Tensor:
    """Random-resized crop to ``size x size`` and random horizontal flip (stateless)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seeds[0],
        min_object_covered=0.1,
        aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(image, (size, size))
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """ImageNet evaluation: shorter side to ``round(size * 256 / 224)``, central ``size`` crop."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = round(size * 256 / 224) / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(image, new_shape)
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    return tf.ensure_shape(image[top:top + size, left:left + size], (size, size, image.shape[-1]))


def _train_map(source: Source, augment: str):
    size = source.image_shape[0]

    def fn(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor):
        if augment == "cifar":
            image = augment_cifar(image, seed)
        elif augment == "imagenet":
            image = augment_imagenet(image, seed, size)
        elif source.augment == "imagenet":  # variable-size images still need one size
            image = center_crop(image, size)
        return tf.ensure_shape(image, source.image_shape), label

    return fn


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    # Examples are not read from per-worker files: shard by data under multi-worker training.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def train_batches(
    source: Source,
    *,
    batch_size: int,
    seed: int,
    start_epoch: int,
    epochs: int,
    augment: str | None = None,
    shuffle_buffer: int = 50_000,
) -> tf.data.Dataset:
    """Batches of epochs ``start_epoch .. epochs-1`` of the training split, in order.

    Each epoch has ``num_train // batch_size`` full batches (the remainder is dropped, so
    every step has the global batch size); the result is meant for
    ``model.fit(..., steps_per_epoch=num_train // batch_size, initial_epoch=start_epoch)``.

    Args:
      source: the dataset (:func:`common.datasets.load`).
      batch_size: global batch size.
      seed: shuffling and augmentation seed.
      start_epoch: first epoch to produce (a resumed run starts after its last backup).
      epochs: one past the last epoch.
      augment: ``"cifar"``, ``"imagenet"``, ``"none"`` or ``None`` for ``source.augment``.
      shuffle_buffer: shuffle buffer size (the whole split if it is smaller).
    """
    augment = source.augment if augment is None else augment
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    examples, count = source.split("train")
    if batch_size > count:
        raise ValueError(f"batch size {batch_size} is larger than the {count} training examples")
    indexed = examples.enumerate()
    if source.cache:
        indexed = indexed.cache()
    map_fn = _train_map(source, augment)

    def one_epoch(epoch: int) -> tf.data.Dataset:
        # Python-int seeds: tf.data rejects tensor shuffle seeds once a global seed is set.
        epoch_seed = _epoch_seed(seed, epoch)
        ds = indexed.shuffle(min(shuffle_buffer, count), seed=epoch_seed,
                             reshuffle_each_iteration=False)
        ds = ds.map(
            lambda i, ex: map_fn(ex[0], ex[1], tf.stack([tf.constant(epoch_seed, tf.int64), i])),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return ds.batch(batch_size, drop_remainder=True)

    if start_epoch >= epochs:
        raise ValueError(f"start_epoch {start_epoch} is not before epochs {epochs}")
    ds = functools.reduce(tf.data.Dataset.concatenate, map(one_epoch, range(start_epoch, epochs)))
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def eval_batches(source: Source, split: str, *, batch_size: int) -> tf.data.Dataset:
    """Batches of a split for evaluation: no augmentation (ImageNet: resize and center crop)."""
    examples, _ = source.split(split)
    size = source.image_shape[0]

    def fn(image: tf.Tensor, label: tf.Tensor):
        if source.augment == "imagenet":
            image = center_crop(image, size)
        return tf.ensure_shape(image, source.image_shape), label

    ds = examples.map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if source.cache:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())
