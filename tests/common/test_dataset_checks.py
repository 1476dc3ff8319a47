"""Image folders checked before training: unreadable files, classes, output directories.

Real files on disk: valid PNG/JPEG, a zero-byte file, a truncated JPEG, random bytes.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests._train_helpers import ROOT
from common import datasets, folders
from common.console import output_problem


def _image(seed, shape=(6, 5, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _write(path, blob):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(blob)
    return path


def _jpeg(seed):
    return tf.io.encode_jpeg(_image(seed, (16, 16, 3))).numpy()


def _png(seed):
    return tf.io.encode_png(_image(seed)).numpy()


BAD_FILES = {  # name -> content that tf.io.decode_image refuses
    "empty.png": b"",
    "truncated.jpg": None,  # first half of a valid JPEG, filled in below
    "noise.jpeg": np.random.default_rng(9).integers(0, 256, 500, dtype=np.uint8).tobytes(),
    "text.png": b"not an image at all\n",
}


def _bad_blob(name):
    blob = BAD_FILES[name]
    return _jpeg(3)[: len(_jpeg(3)) // 2] if blob is None else blob


def _decodes(path):
    """Independent reference: decode one file eagerly, as training's map function does."""
    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return True
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        return False


def test_unreadable_images_are_exactly_the_files_that_do_not_decode(tmp_path):
    files = []
    for i in range(6):  # good files between the bad ones, PNG and JPEG
        files.append(_write(str(tmp_path / f"good{i}.png"), _png(i)))
        files.append(_write(str(tmp_path / f"good{i}.jpg"), _jpeg(i)))
    bad = [_write(str(tmp_path / name), _bad_blob(name)) for name in BAD_FILES]
    files[3:3] = bad[:2]
    files += bad[2:]
    reference = [f for f in files if not _decodes(f)]
    assert sorted(reference) == sorted(bad)  # the fixtures are what they claim to be
    assert folders.unreadable_images(files) == reference  # in the given order
    assert folders.unreadable_images(files[:2]) == [] == folders.unreadable_images([])


def _folder(root, bad=(), sizes=(4, 3, 3)):
    """Class folders of PNGs; ``bad``: (class index, file name) of unreadable files."""
    good = {}
    for c, n in enumerate(sizes):
        for i in range(n):
            image = _image(100 * c + i)
            _write(os.path.join(root, f"class_{c}", f"{i}.png"), tf.io.encode_png(image).numpy())
            good[image.tobytes()] = c
    for c, name in bad:
        _write(os.path.join(root, f"class_{c}", name), _bad_blob(name))
    return good


def test_unreadable_files_refuse_the_folder_naming_them(tmp_path):
    _folder(str(tmp_path), bad=[(1, "empty.png"), (2, "truncated.jpg")])
    with pytest.raises(datasets.DatasetError) as error:
        datasets.load(f"folder:{tmp_path}")
    message = str(error.value)
    assert "\n" not in message
    assert "2 of 12 image files cannot be decoded: class_1/empty.png, class_2/truncated.jpg" in message
    assert "--skip_bad_images" in message


def test_many_unreadable_files_named_first_five_and_counted(tmp_path):
    _folder(str(tmp_path))
    for i in range(7):
        _write(str(tmp_path / "class_0" / f"{i}_empty.png"), b"")
    with pytest.raises(datasets.DatasetError) as error:
        datasets.load(f"folder:{tmp_path}")
    assert ("7 of 17 image files cannot be decoded: class_0/0_empty.png, class_0/1_empty.png, "
            "class_0/2_empty.png, class_0/3_empty.png, class_0/4_empty.png and 2 more") in str(error.value)


def _read_all(source):
    out = {}
    for ds, _ in source.splits.values():
        for x, y in ds:
            out[x.numpy().astype(np.uint8).tobytes()] = int(y.numpy())
    return out


def test_skip_bad_images_leaves_them_out_and_logs_them(tmp_path, caplog):
    good = _folder(str(tmp_path), bad=[(0, "noise.jpeg"), (2, "empty.png")])
    with caplog.at_level("WARNING"):
        source = datasets.load(f"folder:{tmp_path}", validation_split=0.2, skip_bad_images=True)
    assert source.num_train + source.num_validation == len(good) == 10
    assert source.num_classes == 3
    assert _read_all(source) == good  # exactly the good images, with their labels
    (record,) = [r for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert "leaving out 2 of 12" in record.getMessage()
    assert "class_0/noise.jpeg, class_2/empty.png" in record.getMessage()


def test_skipping_that_empties_a_class_relabels_the_rest(tmp_path):
    good = _folder(str(tmp_path), sizes=(3, 0, 2), bad=[(1, "empty.png")])
    source = datasets.load(f"folder:{tmp_path}", validation_split=0.0, skip_bad_images=True)
    assert source.num_classes == 2
    assert _read_all(source) == {k: (0 if c == 0 else 1) for k, c in good.items()}


@pytest.mark.parametrize("sizes, bad, names", [((3,), [], "(class_0)"),
                                               ((3, 0), [(1, "empty.png")], "(class_0)")])
def test_fewer_than_two_classes_refused(tmp_path, sizes, bad, names):
    _folder(str(tmp_path), sizes=sizes, bad=bad)
    with pytest.raises(datasets.DatasetError, match=r"has 1 class with images \(class_0\); a "
                                                r"classifier needs at least 2"):
        datasets.load(f"folder:{tmp_path}", skip_bad_images=True)


def test_output_dir_that_is_a_file_or_under_a_file_refused(tmp_path):
    a_file = tmp_path / "export"
    a_file.write_text("x")
    def problem(path):
        return output_problem(path, directory=True)

    assert problem(str(a_file)) == "exists and is not a directory"
    assert problem(str(a_file / "sub" / "dir")) == f"cannot be created: {a_file} is not a directory"
    assert problem(str(tmp_path / "new" / "dir")) is None
    assert problem(str(tmp_path)) is None
    assert problem("gs://bucket/run") is None


def _train(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "train", "--model=digits", "--time_steps=2",
                           "--epochs=1", "--batch_size=4", *args], cwd=ROOT, env=env,
                          text=True, capture_output=True, timeout=600)


def _error_lines(result):
    return [line for line in result.stderr.splitlines() if "error" in line.lower()]


@pytest.mark.slow
def test_cli_refuses_bad_folder_and_export_file_in_one_line(tmp_path):
    folder = tmp_path / "images"
    _folder(str(folder), bad=[(2, "truncated.jpg")])
    result = _train(f"--dataset=folder:{folder}", f"--model_dir={tmp_path / 'm1'}")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = _error_lines(result)
    assert line.startswith(f"train: error: --dataset=folder:{folder}: folder")
    assert "1 of 11 image files cannot be decoded: class_2/truncated.jpg" in line
    assert not (tmp_path / "m1" / "history.csv").exists()  # refused before training

    export_file = tmp_path / "export.txt"
    export_file.write_text("not a directory")
    result = _train("--dataset=digits", f"--model_dir={tmp_path / 'm3'}",
                    f"--export_dir={export_file}")
    assert result.returncode == 2
    (line,) = _error_lines(result)
    assert line == f"train: error: --export_dir={export_file}: exists and is not a directory"
    assert not (tmp_path / "m3").exists()  # refused before anything was written


@pytest.mark.slow
def test_cli_skip_bad_images_trains_on_the_rest(tmp_path):
    folder = tmp_path / "images"
    _folder(str(folder), bad=[(0, "empty.png"), (1, "noise.jpeg")])
    result = _train(f"--dataset=folder:{folder}", f"--model_dir={tmp_path / 'm'}",
                    "--skip_bad_images", "--validation_split=0.2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "leaving out 2 of 12 image files that cannot be decoded" in result.stderr
    assert "class_0/empty.png, class_1/noise.jpeg" in result.stderr
    assert (tmp_path / "m" / "export" / "saved_model.pb").is_file()
