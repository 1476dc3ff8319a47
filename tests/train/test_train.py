"""``train.run`` in-process: TFDS mock data, image folders, mirrored CPUs, exports, bad flags."""
import dataclasses
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags

import models
from tests._train_helpers import check_export, python_m_train, tensorboard_tags
from train import flags as train_flags
from train.config import TrainConfig
from train.recipe import learning_rate
from train.run import run

FLAGS = train_flags.FLAGS


def parse(tmp_path, **overrides):
    """The TrainConfig of ``python -m train`` with these flags (parsed, validated)."""
    values = dict(model="digits", dataset="digits", time_steps=2, epochs=1, batch_size=32,
                  lr_schedule="constant", model_dir=str(tmp_path / "model"))
    values.update(overrides)
    FLAGS.unparse_flags()
    try:
        FLAGS(["train"] + [f"--{k}={v}" for k, v in values.items()])
        return train_flags.to_config(FLAGS)
    finally:
        FLAGS.unparse_flags()


def _images(shape, n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def _spiking_counts_are_integers(activity, time_steps):
    for name in ("encoder", "tandem_conv1", "tandem_dense1"):
        counts = np.asarray(activity[name])
        assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
        assert counts.max() <= time_steps


@pytest.mark.parametrize("dataset, shape, classes", [
    ("cifar10", (32, 32, 3), 10),
    pytest.param("imagenet2012", (16, 16, 3), 1000, marks=pytest.mark.slow)])
def test_tfds_mock_end_to_end(tmp_path, dataset, shape, classes):
    values = parse(tmp_path, dataset=dataset, batch_size=4, image_size=16,
                   export_dir=str(tmp_path / "export"))
    with tfds.testing.mock_data(num_examples=8):
        model = run(values)
    assert model.input_shape == (None, *shape) and model.output_shape == (None, classes)
    _, activity = check_export(str(tmp_path / "export"), _images(shape), model)
    _spiking_counts_are_integers(activity, 2)


def test_folder_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    for c in range(3):
        os.makedirs(tmp_path / "images" / f"c{c}")
        for i in range(6):
            pixels = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
            tf.io.write_file(str(tmp_path / "images" / f"c{c}" / f"{i}.png"), tf.io.encode_png(pixels))
    values = parse(tmp_path, dataset=f"folder:{tmp_path / 'images'}", batch_size=4,
                   validation_split=0.2, epochs=2)
    model = run(values)
    assert model.output_shape == (None, 3)
    check_export(str(tmp_path / "model" / "export"), _images((10, 10, 3)), model)
    with open(tmp_path / "model" / "history.csv") as f:
        assert len(f.read().strip().splitlines()) == 1 + 2  # header + one row per epoch


@pytest.mark.slow
def test_mirrored_on_two_cpus(tmp_path):
    # In a process of its own, as a user runs it: a second MirroredStrategy in the test
    # process would collide with the conftest one's collectives ("Shape mismatch").
    model_dir = tmp_path / "model"
    proc = python_m_train("--model=digits", "--dataset=digits", "--time_steps=2", "--epochs=1",
                          "--batch_size=128", "--lr_schedule=constant", "--strategy=mirrored",
                          "--cpu_devices=2", f"--model_dir={model_dir}",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "(64 per replica x 2 replicas)" in err
    check_export(str(model_dir / "export"), _images((8, 8, 1)))
    tags = tensorboard_tags(str(model_dir / "logs"))
    assert {"epoch_loss", "epoch_top1", "epoch_top5"} <= tags


@pytest.mark.slow
def test_batch_not_divisible_by_replicas(tmp_path):
    proc = python_m_train("--model=digits", "--dataset=digits", "--strategy=mirrored",
                          "--cpu_devices=2", "--batch_size=33", f"--model_dir={tmp_path / 'm'}",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2
    assert "train: error: --batch_size=33: not divisible by the 2 replicas" in err


def test_folder_without_images(tmp_path):
    os.makedirs(tmp_path / "empty" / "class_a")
    with pytest.raises(train_flags.FlagError, match=r"^--dataset=folder:.*no PNG or JPEG images"):
        run(parse(tmp_path, dataset=f"folder:{tmp_path / 'empty'}"))


@pytest.mark.parametrize("dataset", ["mnist", "folder:"])
def test_unknown_dataset_is_refused_before_training(tmp_path, dataset):
    """common.datasets defines the dataset names: its refusal names the flag, nothing is written."""
    with pytest.raises(train_flags.FlagError, match=f"^--dataset={dataset}: "):
        run(parse(tmp_path, dataset=dataset))
    assert not os.path.exists(tmp_path / "model" / "config.json")


@pytest.mark.parametrize("flag, value, message", [
    ("model", "resnet", f"value should be one of <{'|'.join(sorted(models.BUILDERS))}>"),
    ("time_steps", 0, "0 is not an integer in the range [1, 256]"),
    ("time_steps", 100000, "100000 is not an integer in the range [1, 256]"),
    ("epochs", 100000, "100000 is not an integer in the range [1, 10000]"),
    ("image_size", 4000, "4000 is not an integer in the range [1, 1024]"),
    ("batch_size", 0, "0 is not an integer in the range [1, 1048576]"),
    ("seed", -1, "-1 is not an integer in the range [0, 2147483646]"),
    ("validation_split", 1.0, "must be in [0.0, 1.0)"),
    ("validation_split", "nan", "must be a finite number"),
    ("learning_rate", 0.0, "must be > 0.0"),
    ("learning_rate", "inf", "must be a finite number"),
    ("weight_decay", -1.0, "must be >= 0.0"),
    ("lr_step_factor", 2.0, "must be in (0.0, 1.0]"),
    ("dropout", 1.0, "must be in [0.0, 1.0)"),
])
def test_bad_flag_values(tmp_path, flag, value, message):
    with pytest.raises(flags.IllegalFlagValueError) as info:
        parse(tmp_path, **{flag: value})
    assert str(info.value) == f"flag --{flag}={value}: {message}"


def test_default_flags_are_the_authors_recipe(tmp_path):
    config = parse(tmp_path, model="cifarnet", dataset="cifar10", time_steps=10, epochs=150,
                   batch_size=256, lr_schedule="step")
    assert config == TrainConfig(model_dir=str(tmp_path / "model"))
    assert (config.learning_rate, config.lr_step_epochs, config.lr_step_factor,
            config.weight_decay, config.validation_split) == (1e-3, 50, 0.1, 0.0, 0.1)  # method §8


def test_every_recorded_field_is_a_flag_and_round_trips(tmp_path):
    """flags -> TrainConfig -> flags.txt -> flags gives the same TrainConfig; config.json too."""
    config = parse(tmp_path, dropout=0.25, image_size=12, jit_compile=True, tpu="")
    FLAGS.unparse_flags()
    path = tmp_path / "flags.txt"
    path.write_text(config.to_flags())
    FLAGS(["train", f"--flagfile={path}"])
    assert train_flags.to_config(FLAGS) == config
    FLAGS.unparse_flags()
    assert "--restart" not in config.to_flags() and "--norestart" not in config.to_flags()
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_learning_rate_schedules():
    values = TrainConfig(learning_rate=1e-3, epochs=150, lr_schedule="step",
                         lr_step_epochs=50, lr_step_factor=0.1)
    steps = 10  # per epoch
    schedule = learning_rate(values, steps)
    # x0.1 at the first step of epochs 50 and 100 (method §8).
    expected = {0: 1e-3, 499: 1e-3, 500: 1e-4, 999: 1e-4, 1000: 1e-5, 1499: 1e-5}
    for step, lr in expected.items():
        assert float(schedule(step)) == pytest.approx(lr, rel=1e-6), step
    schedule = learning_rate(dataclasses.replace(values, lr_schedule="cosine"), steps)
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(750)) == pytest.approx(0.5e-3, rel=1e-5)  # (1 + cos(pi/2)) / 2
    # no step inside 50 epochs: constant
    assert learning_rate(dataclasses.replace(values, epochs=50), steps) == 1e-3


@pytest.mark.slow
def test_constrain_then_train_exports_the_snn(tmp_path):
    """--mode=quantized --export_mode=tandem: the SavedModel runs the quantized ANN's weights
    as the SNN; model.keras keeps the quantized model for further training."""
    import keras

    import tandem_keras as tk

    from common import datasets

    model = run(parse(tmp_path, mode="quantized", export_mode="tandem", batch_size=64, epochs=2,
                      time_steps=4))
    export_dir = str(tmp_path / "model" / "export")
    images = next(iter(datasets.load("digits").split("test")[0].batch(64)))[0].numpy()
    snn = tk.with_mode(model, "tandem")
    # The two modes differ on these images, so the comparison below tells them apart.
    assert not np.allclose(np.asarray(model(images, training=False)),
                           np.asarray(snn(images, training=False)), atol=1e-4)
    loaded = tf.saved_model.load(export_dir)
    np.testing.assert_allclose(np.asarray(loaded.serve(images)),
                               np.asarray(snn(images, training=False)), rtol=1e-5, atol=1e-5)
    saved = keras.models.load_model(os.path.join(export_dir, "model.keras"))
    assert saved.get_layer("tandem_conv1").mode == "quantized"


def test_importing_train_leaves_the_global_flags_alone():
    from absl import flags

    # Other modules may define flags of the same names globally (bench does); none is train's.
    assert all(name not in flags.FLAGS or flags.FLAGS[name] is not FLAGS[name] for name in FLAGS)


@pytest.mark.slow
def test_width_divisor_flag_narrows_the_model_and_is_fixed_for_the_run(tmp_path):
    from train.rundir import RunDirError

    model = run(parse(tmp_path, width_divisor=2))
    assert model.get_layer("tandem_dense1").units == 64      # digits: 128 / 2
    assert model.get_layer("tandem_conv1").filters == 32     # 64 / 2
    with pytest.raises(RunDirError, match=r"--width_divisor=2 \(now 1\)"):
        run(parse(tmp_path, width_divisor=1))
