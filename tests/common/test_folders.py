"""Image folders: what is a class, what is refused, and a dataset's identity wherever it lies.

Real files on disk (PNG written by TensorFlow), compared with what was written.
"""
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from common import datasets, folders


def _png(path, seed, shape=(6, 5, 3)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    tf.io.write_file(str(path), tf.io.encode_png(image))
    return image


def _folder(root, sizes=(5, 4, 3), names=("cat", "dog", "emu"), shape=(6, 5, 3)):
    written = {}
    for c, (name, n) in enumerate(zip(names, sizes)):
        for i in range(n):
            written[_png(os.path.join(root, name, f"{i}.png"), 100 * c + i, shape).tobytes()] = name
    return written


def _examples(source, split):
    ds, count = source.split(split)
    pairs = [(x.numpy().astype(np.uint8).tobytes(), int(y)) for x, y in ds]
    assert len(pairs) == count
    return pairs


def test_the_same_images_elsewhere_are_the_same_dataset_and_split(tmp_path):
    _folder(tmp_path / "a" / "train")
    shutil.copytree(tmp_path / "a" / "train", tmp_path / "b" / "elsewhere" / "train")
    here = datasets.load(f"folder:{tmp_path / 'a' / 'train'}", validation_split=0.25)
    there = datasets.load(f"folder:{tmp_path / 'b' / 'elsewhere' / 'train'}", validation_split=0.25)
    assert here.identity == there.identity
    assert here.identity["dataset"] == "folder:train"  # its name, not its path
    assert str(tmp_path) not in repr(here.identity)
    assert here.identity["classes"] == ["cat", "dog", "emu"] and here.identity["folder_files"] == 12
    for split in ("train", "validation"):  # the same images, labels and order
        assert _examples(here, split) == _examples(there, split)
    # Another folder of the same name: one image fewer, or one class renamed.
    other = tmp_path / "c" / "train"
    shutil.copytree(tmp_path / "a" / "train", other)
    os.remove(other / "dog" / "3.png")
    assert datasets.load(f"folder:{other}").identity["folder_fingerprint"] != here.identity["folder_fingerprint"]
    os.remove(other / "dog" / "2.png")
    os.rename(other / "dog", other / "dingo")
    _png(other / "dingo" / "3.png", 0)
    assert datasets.load(f"folder:{other}").identity["folder_fingerprint"] != here.identity["folder_fingerprint"]


def test_all_is_every_example_and_classes_are_matched_by_name(tmp_path):
    written = _folder(tmp_path / "train")
    source = datasets.load(f"folder:{tmp_path / 'train'}", validation_split=0.25)
    everything = _examples(source, "all")
    assert sorted(everything) == sorted((k, ["cat", "dog", "emu"].index(v)) for k, v in written.items())
    # A test folder without 'cat', its classes in another order: labels by the model's names.
    test = _folder(tmp_path / "test", sizes=(2, 3), names=("emu", "dog"))
    source = datasets.load(f"folder:{tmp_path / 'test'}", validation_split=0.0,
                       classes=["cat", "dog", "emu"])
    assert source.num_classes == 3
    assert sorted(_examples(source, "all")) == sorted(
        (k, ["cat", "dog", "emu"].index(v)) for k, v in test.items())
    with pytest.raises(datasets.DatasetError, match=r"class folder yak that the model was not "
                                                r"trained on \(its classes: cat, dog, emu\)"):
        _folder(tmp_path / "test", sizes=(1,), names=("yak",))
        datasets.load(f"folder:{tmp_path / 'test'}", classes=["cat", "dog", "emu"])


def test_parent_of_split_folders_refused(tmp_path):
    for part in ("train", "test"):
        _folder(tmp_path / part, sizes=(2, 2))
    with pytest.raises(datasets.DatasetError) as error:
        datasets.load(f"folder:{tmp_path}")
    message = str(error.value)
    assert "\n" not in message
    assert "its sub-folders test, train hold the same class folders (cat, dog)" in message
    assert f"--dataset=folder:{tmp_path / 'train'}" in message


def test_nested_class_folders_are_still_one_class(tmp_path):
    """Images in sub-folders of a class (not the same names in every class) stay allowed."""
    _png(tmp_path / "cat" / "indoor" / "1.png", 1)
    _png(tmp_path / "cat" / "outdoor" / "2.png", 2)
    _png(tmp_path / "dog" / "3.png", 3)
    files, labels, classes = folders.list_folder(str(tmp_path))
    assert classes == ["cat", "dog"] and labels == [0, 0, 1] and len(files) == 3


def test_symlink_loop_counts_each_image_once(tmp_path, caplog):
    written = _folder(tmp_path, sizes=(4, 4), names=("a", "b"))
    os.symlink(tmp_path, tmp_path / "a" / "loop")          # back to the root
    os.symlink(tmp_path / "b", tmp_path / "b" / "self")    # to itself
    with caplog.at_level(logging.WARNING):
        source = datasets.load(f"folder:{tmp_path}", validation_split=0.0)
    assert source.num_train == len(written) == 8
    assert sorted(_examples(source, "train")) == sorted(
        (k, ["a", "b"].index(v)) for k, v in written.items())
    warnings = [r.getMessage() for r in caplog.records if "already listed" in r.getMessage()]
    assert any("a/loop" in w for w in warnings) and any("b/self" in w for w in warnings)


def test_empty_class_folder_refused_naming_it(tmp_path):
    _folder(tmp_path)
    os.makedirs(tmp_path / "bee")
    (tmp_path / "bee" / "notes.txt").write_text("no images")
    with pytest.raises(datasets.DatasetError, match=r"class folder bee has no PNG or JPEG images"):
        datasets.load(f"folder:{tmp_path}")


def test_hidden_folders_and_files_are_not_classes_or_images(tmp_path):
    written = _folder(tmp_path, sizes=(3, 3), names=("a", "b"))
    _png(tmp_path / ".ipynb_checkpoints" / "x.png", 7)
    _png(tmp_path / "a" / ".ipynb_checkpoints" / "0-checkpoint.png", 8)
    _png(tmp_path / "b" / ".hidden.png", 9)
    source = datasets.load(f"folder:{tmp_path}", validation_split=0.0)
    assert source.identity["classes"] == ["a", "b"] and source.num_train == len(written)


def test_large_first_image_needs_image_size(tmp_path):
    _png(tmp_path / "a" / "0.png", 0, shape=(600, 520, 3))
    _png(tmp_path / "b" / "0.png", 1, shape=(8, 8, 3))
    with pytest.raises(datasets.DatasetError, match=r"first image, a/0.png, is 600x520 pixels .* "
                                                r"pass --image_size"):
        datasets.load(f"folder:{tmp_path}")
    source = datasets.load(f"folder:{tmp_path}", image_size=16, validation_split=0.0)
    assert source.image_shape == (16, 16, 3)


@pytest.mark.parametrize("dataset", ["digits", "folder"])
def test_validation_split_that_leaves_nothing_names_it(tmp_path, dataset):
    if dataset == "folder":
        _folder(tmp_path)
        dataset = f"folder:{tmp_path}"
    with pytest.raises(datasets.DatasetError, match=r"--validation_split=0.9999 holds out \d+ of the "
                                                r"\d+ training examples and leaves none"):
        datasets.load(dataset, validation_split=0.9999)


def test_tfds_and_digits_all_is_every_split():
    source = datasets.load("digits")
    _, count = source.split("all")
    assert count == 1797
