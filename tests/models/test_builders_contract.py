"""The builders follow the keras.applications contract: keyword-only arguments,
include_top, input_tensor, weights=None|path, and width_divisor on every builder."""
import inspect

import keras
import numpy as np
import pytest

import models
import tandem_keras as tk

SMALL = {"cifarnet": (16, 16, 3), "alexnet_cifar": (16, 16, 3),
         "alexnet_imagenet": (32, 32, 3), "digits": (8, 8, 1), "resnet20": (16, 16, 3),
         "vgg11": (32, 32, 3)}


@pytest.mark.parametrize("name", sorted(models.BUILDERS))
def test_keyword_only_with_the_applications_arguments(name):
    params = inspect.signature(models.BUILDERS[name]).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    for arg in ("include_top", "weights", "input_tensor", "input_shape", "num_classes",
                "width_divisor", "time_steps", "decode", "mode", "neuron"):
        assert arg in params, arg
    with pytest.raises(TypeError):
        models.BUILDERS[name](SMALL[name])  # positional input_shape is refused


@pytest.mark.parametrize("name", sorted(models.BUILDERS))
def test_width_divisor_divides_every_width(name):
    full = models.build(name, input_shape=SMALL[name], time_steps=2)
    half = models.build(name, input_shape=SMALL[name], time_steps=2, width_divisor=2)
    widths = lambda m: [getattr(l, "filters", None) or getattr(l, "units", None)  # noqa: E731
                        for l in m.layers if hasattr(l, "filters") or hasattr(l, "units")]
    # Every hidden width halves; the readout keeps num_classes units.
    assert [w // 2 for w in widths(full)[:-1]] == widths(half)[:-1]
    assert widths(full)[-1] == widths(half)[-1]
    with pytest.raises(ValueError, match="width_divisor"):
        models.build(name, input_shape=SMALL[name], width_divisor=0)


def test_include_top_false_returns_last_hidden_spike_counts():
    model = models.digits(time_steps=3, include_top=False)
    assert model.output_shape == (None, 128)
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype("float32")
    counts = np.asarray(model(x, training=False))
    # Spike counts of the last TandemDense: integers in [0, T].
    np.testing.assert_array_equal(counts, np.round(counts))
    assert counts.min() >= 0 and counts.max() <= 3
    full = models.digits(time_steps=3)
    full.set_weights(model.get_weights() + full.get_weights()[len(model.get_weights()):])
    probe = keras.Model(full.inputs, full.get_layer("spike_count").output)
    np.testing.assert_array_equal(np.asarray(probe(x, training=False)), counts)


def test_input_tensor_is_used_and_shapes_must_agree():
    images = keras.Input((8, 8, 1), name="my_images")
    model = models.digits(input_tensor=images, time_steps=2)
    assert model.inputs[0] is images
    with pytest.raises(ValueError, match="input_shape"):
        models.digits(input_tensor=keras.Input((8, 8, 1)), input_shape=(16, 16, 1))
    with pytest.raises(ValueError, match="input_tensor must be a Keras tensor"):
        models.digits(input_tensor=np.zeros((1, 8, 8, 1)))


def test_weights_path_round_trip(tmp_path):
    source = models.digits(time_steps=2)
    path = str(tmp_path / "digits.weights.h5")
    source.save_weights(path)
    loaded = models.digits(time_steps=2, weights=path)
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="weights must be None or the path"):
        models.digits(weights="imagenet")


@pytest.mark.parametrize("name", sorted(models.BUILDERS))
def test_neuron_reaches_every_spiking_layer(name):
    """``neuron`` is every spiking layer's; the encoder takes it if it is an IF neuron."""
    lif = tk.neurons.LIF(0.8, initial_potential=0.5)
    model = models.build(name, input_shape=SMALL[name], time_steps=2, neuron=lif, decode="spike_count")
    spiking = [l for l in model.layers if isinstance(l, (tk.TandemConv2D, tk.TandemDense, tk.TandemAdd))]
    assert spiking and all(l.neuron in (lif, None) for l in spiking)
    assert model.get_layer("output_neurons").neuron == lif
    assert model.get_layer("encoder").neuron == tk.neurons.IF()
    rounding = models.build(name, input_shape=SMALL[name], time_steps=2, neuron=tk.neurons.IF(0.5))
    assert rounding.get_layer("encoder").neuron == tk.neurons.IF(0.5)
    with pytest.raises(ValueError, match="neuron: unknown neuron 'relu'"):
        models.build(name, input_shape=SMALL[name], neuron="relu")


@pytest.mark.parametrize("name", ["resnet20", "vgg11"])
def test_include_top_false_and_weights_of_the_new_builders(name, tmp_path):
    x = np.random.default_rng(1).uniform(0, 255, (2, *SMALL[name])).astype("float32")
    headless = models.build(name, input_shape=SMALL[name], time_steps=3, include_top=False,
                            width_divisor=4)
    counts = np.asarray(headless(x, training=True))
    np.testing.assert_array_equal(counts, np.round(counts))
    assert counts.min() >= 0 and counts.max() <= 3
    source = models.build(name, input_shape=SMALL[name], time_steps=2, width_divisor=4)
    path = str(tmp_path / "w.weights.h5")
    source.save_weights(path)
    loaded = models.build(name, input_shape=SMALL[name], time_steps=2, width_divisor=4, weights=path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), source.predict(x, verbose=0))
