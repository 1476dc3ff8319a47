"""``python -m train --init_from``: a tandem run that starts from a trained ANN's weights."""
import os

import keras
import numpy as np
import pytest
from absl import flags

import models
import tandem_keras as tk
from tests._train_helpers import check_export
from tests.train.test_train import parse
from common import datasets
from train import flags as train_flags
from train.run import compiled_model, run


def _ann(tmp_path, shape=(8, 8, 1), classes=10, export_dir=True):
    """A digits ANN (tandem layers in ann mode, as a --mode=ann run exports it) with BN
    statistics off their initial values, saved as an export directory's model.keras."""
    ann = models.digits(input_shape=shape, num_classes=classes, time_steps=2, mode="ann")
    for layer in ann.layers:
        if isinstance(layer, tk.TandemLayer) and layer.batch_norm:
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(np.linspace(-0.5, 0.5, c))
            layer.moving_variance.assign(np.linspace(0.5, 2.0, c))
    directory = tmp_path / "ann_export"
    os.makedirs(directory, exist_ok=True)
    ann.save(str(directory / "model.keras"))
    return ann, str(directory if export_dir else directory / "model.keras")


@pytest.mark.parametrize("export_dir", [True, False])
def test_init_from_converts_the_ann(tmp_path, export_dir):
    ann, path = _ann(tmp_path, export_dir=export_dir)
    config = parse(tmp_path, init_from=path, time_steps=3)
    assert config.init_from == path
    source = datasets.load("digits")
    model = compiled_model(config, source, steps_per_epoch=2)
    assert model.optimizer is not None
    encoder = model.get_layer("encoder")
    assert (encoder.time_steps, encoder.mode, encoder.neuron) == (3, "tandem", tk.conversion.DEFAULT_NEURON)
    assert all(layer.mode == "tandem" for layer in model.layers if hasattr(layer, "mode"))
    thresholds = [layer.threshold for layer in model.layers if hasattr(layer, "threshold")]
    assert len(thresholds) == 3 and 1.0 not in thresholds      # calibrated on training batches
    images = next(iter(source.split("validation")[0].batch(16)))[0]
    np.testing.assert_allclose(tk.with_mode(model, "ann")(images), ann(images), rtol=1e-4, atol=1e-4)


def test_init_from_in_quantized_mode(tmp_path):
    _, path = _ann(tmp_path)
    model = compiled_model(parse(tmp_path, init_from=path, mode="quantized"), datasets.load("digits"), 2)
    assert {layer.mode for layer in model.layers if hasattr(layer, "mode")} == {"quantized"}


def test_init_from_that_does_not_fit_the_dataset(tmp_path):
    _, path = _ann(tmp_path, shape=(12, 12, 1))
    with pytest.raises(train_flags.FlagError) as info:
        run(parse(tmp_path, init_from=path))
    message = str(info.value)
    assert message.startswith(f"--init_from={path}: takes images of shape (12, 12, 1) into 10 classes")
    assert "\n" not in message and "(8, 8, 1)" in message


def test_init_from_with_a_layer_convert_refuses(tmp_path):
    ann = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.LeakyReLU(name="leaky"), keras.layers.Flatten(),
                            keras.layers.Dense(10)])
    path = str(tmp_path / "leaky.keras")
    ann.save(path)
    with pytest.raises(train_flags.FlagError, match=r"^--init_from=.*leaky.keras: .*'leaky' \(LeakyReLU\)"):
        run(parse(tmp_path, init_from=path))


@pytest.mark.parametrize("value", ["/nonexistent/model.keras", "{tmp}"])
def test_init_from_must_be_a_keras_file(tmp_path, value):
    value = value.format(tmp=tmp_path)          # a directory without model.keras
    with pytest.raises(flags.IllegalFlagValueError) as info:
        parse(tmp_path, init_from=value)
    assert str(info.value) == (f"flag --init_from={value}: must be a .keras file or a directory "
                               "holding model.keras")


@pytest.mark.slow   # one tandem epoch and the export: 20-40 s
def test_init_from_trains_and_exports(tmp_path):
    _, path = _ann(tmp_path)
    config = parse(tmp_path, init_from=path, time_steps=3, epochs=1, batch_size=64)
    model = run(config)
    export_dir = os.path.join(config.model_dir, "export")
    images = next(iter(datasets.load("digits").split("validation")[0].batch(8)))[0].numpy()
    check_export(export_dir, images, model)
    assert isinstance(keras.models.load_model(os.path.join(export_dir, "model.keras")).get_layer(
        "tandem_conv1"), tk.TandemConv2D)
