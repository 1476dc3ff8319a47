"""TFDS's real ``cifar10`` builder, end to end and offline; ImageNet's manual download.

Only the network download is replaced: ``DownloadManager.download_and_extract`` hands the
builder a locally written ``cifar-10-binary.tar.gz`` (CIFAR-10's own binary format) through
TFDS's real extraction. TFDS's ``_split_generators``, ``_generate_examples``, shuffling and
TFRecord writing then run as for the real archive, and ``python -m train --dataset=cifar10``
trains one epoch on the result.
"""
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from tests._train_helpers import ROOT, read_only

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_TRAIN_BATCH, NUM_TEST = 4, 6  # 5 x 4 = 20 training images

# Runs `python -m train` (argv[2:]) after pointing TFDS's download step at the local archive
# (argv[1]); extraction and everything after it are TFDS's own.
_WRAPPER = """
import runpy, sys
import tensorflow_datasets as tfds

archive = sys.argv.pop(1)

def download_and_extract(self, url_or_urls):
    assert url_or_urls == {url!r}, url_or_urls  # the builder asks for the real archive
    return self.extract(archive)

tfds.download.DownloadManager.download_and_extract = download_and_extract
runpy.run_module("train", run_name="__main__", alter_sys=True)
""".format(url=CIFAR10_URL)


def _write_cifar10_binary(path, seed=0):
    """A tiny ``cifar-10-binary.tar.gz``: records of 1 label byte + 3072 bytes (C, H, W).

    Returns ``{file name: (labels [n], images [n, 32, 32, 3] uint8)}``.
    """
    rng = np.random.default_rng(seed)
    contents, blobs = {}, {}
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        n = NUM_TEST if name == "test_batch.bin" else PER_TRAIN_BATCH
        labels = rng.integers(0, 10, n).astype(np.uint8)
        chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        blobs[name] = np.concatenate([labels[:, None], chw.reshape(n, -1)], axis=1).tobytes()
        contents[name] = (labels, chw.transpose(0, 2, 3, 1))
    blobs["batches.meta.txt"] = ("\n".join(CLASSES) + "\n\n").encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in blobs.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return contents


def _run(args, cwd=ROOT, read_only_folder=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    argv = [sys.executable, *args]
    if read_only_folder is not None:
        argv = read_only(read_only_folder, argv)
    return subprocess.run(argv, cwd=cwd, env=env, text=True, capture_output=True, timeout=600)


def test_a_read_only_data_dir_is_one_line_before_tfds_starts(tmp_path):
    """TFDS cannot prepare cifar10 in a read-only folder: one line naming it, exit 2, before
    TFDS says it starts downloading (and nothing written anywhere)."""
    archive = tmp_path / "cifar-10-binary.tar.gz"
    _write_cifar10_binary(str(archive))
    data_dir, model_dir = tmp_path / "tfds", tmp_path / "model"
    data_dir.mkdir()
    result = _run(["-c", _WRAPPER, str(archive), "--model=digits", "--dataset=cifar10",
                   f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--epochs=1"],
                  read_only_folder=data_dir)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr[-3000:]
    assert result.stderr.startswith(f"train: error: --data_dir={data_dir}: TFDS cannot prepare "
                                    f"'cifar10' there ([Errno "), result.stderr
    assert f"{data_dir}'); use a --data_dir it can write to" in result.stderr
    assert os.listdir(data_dir) == [] and sorted(os.listdir(model_dir)) == [".lock"]


@pytest.mark.slow
def test_real_cifar10_builder_prepares_local_archive_and_trains(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    contents = _write_cifar10_binary(str(archive))
    data_dir, model_dir = tmp_path / "tfds", tmp_path / "model"
    result = _run(["-c", _WRAPPER, str(archive), "--model=digits", "--dataset=cifar10",
                   f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--epochs=1",
                   "--time_steps=2", "--batch_size=8", "--validation_split=0.2"])
    assert result.returncode == 0, result.stderr[-3000:]

    # TFDS prepared the dataset itself: its own metadata records our split sizes and classes.
    (info_path,) = [os.path.join(root, "dataset_info.json")
                    for root, _, files in os.walk(data_dir / "cifar10")
                    if "dataset_info.json" in files]
    with open(info_path) as f:
        info = json.load(f)
    sizes = {s["name"]: int(sum(int(n) for n in s["shardLengths"])) for s in info["splits"]}
    assert sizes == {"train": 5 * PER_TRAIN_BATCH, "test": NUM_TEST}
    history = (model_dir / "history.csv").read_text().splitlines()
    assert len(history) == 2 and history[0].startswith("epoch")  # header + the one epoch
    assert (model_dir / "export" / "saved_model.pb").is_file()

    # What common.datasets reads back from TFDS's files is the archive's pixels (CHW -> HWC) and
    # labels (TFDS shuffles the order): the test split, and the 20 training images across
    # train and validation.
    from common import datasets

    source = datasets.load("cifar10", data_dir=str(data_dir), validation_split=0.2)
    assert (source.num_train, source.num_validation, source.num_classes) == (16, 4, 10)

    def examples(names):
        return sorted((image.tobytes(), int(label)) for name in names
                      for label, image in zip(*contents[name]))

    def read(splits):
        return sorted((x.numpy().astype(np.uint8).tobytes(), int(y.numpy()))
                      for split in splits for x, y in source.split(split)[0])

    assert read(["test"]) == examples(["test_batch.bin"])
    assert read(["train", "validation"]) == examples(f"data_batch_{i}.bin" for i in range(1, 6))

    # Once prepared, a read-only data_dir is read as it is.
    result = _run(["-m", "eval", f"--saved_model={model_dir / 'export'}", "--dataset=cifar10",
                   f"--data_dir={data_dir}", "--split=test", "--noanalysis"], read_only_folder=data_dir)
    assert result.returncode == 0 and "examples: 6 " in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
def test_imagenet_without_manual_download_is_one_line(tmp_path):
    (tmp_path / "downloads" / "manual").mkdir(parents=True)
    (tmp_path / "downloads" / "manual" / "ILSVRC2012_img_val.tar").write_bytes(b"")
    result = _run(["-m", "train", "--dataset=imagenet2012", "--model=alexnet_imagenet",
                   f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'model'}"])
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("train: error: --dataset=imagenet2012"), lines
    manual_dir = os.path.join(str(tmp_path), "downloads", "manual")
    assert "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar" in lines[0]
    assert f"in {manual_dir}/" in lines[0] and "missing: ILSVRC2012_img_train.tar)" in lines[0]


@pytest.mark.parametrize("present", [[], ["ILSVRC2012_img_train.tar"]])
def test_manual_download_message_names_missing_files(tmp_path, present):
    from common import tfds_prepare

    files = tfds_prepare.MANUAL_DOWNLOADS["imagenet2012"][0]
    for name in present:
        (tmp_path / name).write_bytes(b"")
    message = tfds_prepare.manual_download_message("imagenet2012", str(tmp_path))
    missing = [f for f in files if f not in present]
    assert message.endswith(f"in {tmp_path}/ (missing: {', '.join(missing)})")
    for name in files:
        (tmp_path / name).write_bytes(b"")
    assert tfds_prepare.manual_download_message("imagenet2012", str(tmp_path)) is None
    assert tfds_prepare.missing_manual_files("cifar10", str(tmp_path / "absent")) == []
