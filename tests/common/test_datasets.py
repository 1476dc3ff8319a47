"""Datasets and input pipelines: splits, decoding, method §8 augmentation, per-epoch determinism."""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from common import datasets, pipeline


def _arrays(ds):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.stack(images), np.array(labels)


def _rows(images):
    return sorted(map(bytes, np.round(images).astype(np.uint8).reshape(len(images), -1)))


def test_digits_splits_partition_sklearn_digits():
    from sklearn.datasets import load_digits

    source = datasets.load("digits", validation_split=0.1)
    # 1797 images: 20% test (360, stratified), 10% of the remaining 1437 held out (144).
    counts = {name: count for name, (_, count) in source.splits.items()}
    assert counts == {"train": 1293, "validation": 144, "test": 360}
    parts = [_arrays(source.split(name)[0]) for name in ("train", "validation", "test")]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
    assert images.min() == 0 and images.max() == 255
    reference = load_digits()
    assert _rows(images) == _rows(reference.images[..., None] * 255.0 / 16.0)
    assert sorted(labels) == sorted(reference.target)
    assert np.bincount(parts[2][1]).min() >= 35  # stratified: ~36 of each digit in test
    assert source.num_classes == 10 and source.image_shape == (8, 8, 1)


def _write_folder(root, sizes=(6, 4, 5), shape=(6, 5, 3)):
    rng = np.random.default_rng(0)
    expected = {}
    for c, n in enumerate(sizes):
        os.makedirs(os.path.join(root, f"class_{c}"))
        for i in range(n):
            image = rng.integers(0, 256, shape, dtype=np.uint8)
            path = os.path.join(root, f"class_{c}", f"{i}.png")
            tf.io.write_file(path, tf.io.encode_png(image))
            expected[image.tobytes()] = c
    with open(os.path.join(root, "class_0", "notes.txt"), "w") as f:
        f.write("not an image")
    return expected


def test_folder_images_and_labels(tmp_path):
    expected = _write_folder(str(tmp_path))
    source = datasets.load(f"folder:{tmp_path}", validation_split=0.2)
    assert source.num_classes == 3 and source.image_shape == (6, 5, 3)
    assert source.num_train + source.num_validation == 15 and source.num_validation == 3
    seen = {}
    for split in ("train", "validation"):
        images, labels = _arrays(source.split(split)[0])
        for image, label in zip(images, labels):  # PNG is lossless: exact pixels back
            seen[image.astype(np.uint8).tobytes()] = label
    assert seen == expected
    with pytest.raises(datasets.DatasetError, match="no split 'test'"):
        source.split("test")
    assert source.split("all")[1] == 15


def test_folder_resized_to_image_size(tmp_path):
    _write_folder(str(tmp_path))
    source = datasets.load(f"folder:{tmp_path}", image_size=4)
    images, _ = _arrays(source.split("train")[0])
    assert images.shape[1:] == (4, 4, 3)


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "no PNG or JPEG images"),
    (lambda root: os.makedirs(os.path.join(root, "empty_class")), "no PNG or JPEG images"),
])
def test_folder_without_images(tmp_path, make, message):
    make(str(tmp_path))
    with pytest.raises(datasets.DatasetError, match=message):
        datasets.load(f"folder:{tmp_path}")


def test_missing_folder_and_unknown_dataset(tmp_path):
    with pytest.raises(datasets.DatasetError, match="does not exist"):
        datasets.load(f"folder:{tmp_path}/nothing")
    with pytest.raises(datasets.DatasetError, match="unknown dataset 'mnist'"):
        datasets.load("mnist")


@pytest.mark.parametrize("name, shape, classes", [("cifar10", (32, 32, 3), 10),
                                                   ("imagenet2012", (24, 24, 3), 1000)])
def test_tfds_mock(name, shape, classes):
    with tfds.testing.mock_data(num_examples=6):
        source = datasets.load(name, validation_split=0.5, image_size=24)
        batches = pipeline.train_batches(source, batch_size=3, seed=0, start_epoch=0, epochs=1)
        images, labels = next(iter(batches))
        test_images, _ = next(iter(pipeline.eval_batches(source, "test", batch_size=6)))
        every = sum(1 for _ in source.split("all")[0])  # train + validation + test
    # every split once (the mock gives 6 examples to any split, slices included)
    assert set(source.splits) == {"train", "validation", "test"}
    assert source.split("all")[1] == every == 18
    assert source.num_classes == classes and source.image_shape == shape
    assert images.shape == (3, *shape) and test_images.shape == (6, *shape)
    assert labels.dtype == tf.int32
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255


def test_cifar_augmentation_is_a_padded_crop_or_its_mirror():
    image = np.random.default_rng(2).uniform(1, 255, (32, 32, 3)).astype(np.float32)
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)])  # zero padding by 4 (method §8)
    windows = {}
    for top in range(9):
        for left in range(9):
            crop = padded[top:top + 32, left:left + 32]
            windows[(top, left, False)] = crop
            windows[(top, left, True)] = crop[:, ::-1]
    found = set()
    for s in range(40):
        out = pipeline.augment_cifar(tf.constant(image), tf.constant([s, 7], tf.int64)).numpy()
        matches = [key for key, w in windows.items() if np.array_equal(out, w)]
        assert len(matches) == 1
        found.add(matches[0])
    assert len({flip for _, _, flip in found}) == 2  # both flipped and unflipped occur
    assert len(found) > 20  # many different offsets


def test_imagenet_crops():
    image = tf.random.stateless_uniform((40, 60, 3), seed=(1, 2), maxval=255.0)
    out = pipeline.augment_imagenet(image, tf.constant([3, 4], tf.int64), size=16)
    assert out.shape == (16, 16, 3)
    # Evaluation: shorter side to round(16 * 256 / 224) = 18, then the central 16 x 16.
    flat = tf.fill((40, 60, 3), 7.0)
    np.testing.assert_allclose(pipeline.center_crop(flat, 16).numpy(), 7.0, rtol=1e-6)
    ramp = tf.tile(tf.range(60, dtype=tf.float32)[None, :, None], (40, 1, 1))  # value = column
    crop = pipeline.center_crop(ramp, 16).numpy()
    # 40x60 -> 18x27; columns 5..20 of the 27 kept; a resized ramp stays a ramp about the middle.
    assert crop.shape == (16, 16, 1)
    middle = (crop[0, 7, 0] + crop[0, 8, 0]) / 2
    assert middle == pytest.approx(29.5, abs=1.5)


def test_epochs_are_permutations_and_resume_reproduces_them():
    source = datasets.load("digits")
    train_images, train_labels = _arrays(source.split("train")[0])
    full = list(_batches_np(source, 431, 0, 0, 3))  # 1293 = 3 x 431: every example once an epoch
    assert len(full) == 9
    for epoch in range(3):
        images = np.concatenate([x for x, _ in full[3 * epoch:3 * epoch + 3]])
        labels = np.concatenate([y for _, y in full[3 * epoch:3 * epoch + 3]])
        assert _rows(images) == _rows(train_images)
        assert sorted(labels) == sorted(train_labels)
    assert not np.array_equal(full[0][1], full[3][1])  # a new order every epoch
    resumed = list(_batches_np(source, 431, 0, 2, 3))  # restart at epoch 2
    assert len(resumed) == 3
    for (x1, y1), (x2, y2) in zip(full[6:], resumed):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    other_seed = list(_batches_np(source, 431, 1, 0, 1))
    assert not np.array_equal(other_seed[0][1], full[0][1])


def _batches_np(source, batch_size, seed, start, epochs):
    ds = pipeline.train_batches(source, batch_size=batch_size, seed=seed,
                                start_epoch=start, epochs=epochs)
    for x, y in ds:
        yield x.numpy(), y.numpy()


def test_batch_larger_than_dataset():
    with pytest.raises(ValueError, match="larger than the 1293 training examples"):
        pipeline.train_batches(datasets.load("digits"), batch_size=2000, seed=0, start_epoch=0,
                               epochs=1)
