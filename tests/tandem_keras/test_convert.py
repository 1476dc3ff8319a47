"""tk.convert: the ANN's weights carry over exactly (the converted model in "ann" mode is the
ANN, before and after threshold calibration), the layer mapping, the report, the refusals."""

import warnings

import keras
import numpy as np
import pytest

import tandem_keras as tk
from tandem_keras.conversion import ConversionError

L = keras.layers
RNG = np.random.default_rng(0)


def randomize_batch_norm(model, seed=0):
    """Non-trivial BN statistics and affine parameters (fresh BN layers are the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.2, c))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.2, c))
    return model


def small_cnn():
    """Every ReLU spelling, BN with and without center/scale, pooling, padding, dropout."""
    x = keras.Input((12, 12, 3))
    y = L.Rescaling(1 / 255.0)(x)
    y = L.Normalization(mean=[0.5, 0.4, 0.3], variance=[0.1, 0.2, 0.3])(y)
    y = L.Conv2D(6, 3, padding="same", use_bias=False)(y)
    y = L.BatchNormalization()(y)
    y = L.ReLU(name="relu0")(y)
    y = L.Conv2D(8, 3, padding="same", activation="relu", name="conv_relu")(y)
    y = L.ZeroPadding2D(1)(y)
    y = L.AveragePooling2D(2)(y)
    y = L.Conv2D(8, 3, strides=2)(y)
    y = L.BatchNormalization(center=False, epsilon=1e-2)(y)
    y = L.Activation("relu")(y)
    y = L.Dropout(0.3)(y)
    y = L.Flatten()(y)
    y = L.Dense(16)(y)
    y = L.BatchNormalization(scale=False)(y)
    y = L.ReLU()(y)
    y = L.Dense(5, activation="softmax")(y)
    return randomize_batch_norm(keras.Model(x, y))


def small_resnet(randomize=True, classes=4):
    """Identity and projection shortcuts, a global average pooling readout."""
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(8, 3, padding="same")(x)
    y = L.BatchNormalization()(y)
    y = L.ReLU(name="relu0")(y)
    for filters, stride in ((8, 1), (12, 2)):
        r = L.Conv2D(filters, 3, strides=stride, padding="same")(y)
        r = L.BatchNormalization()(r)
        r = L.ReLU()(r)
        r = L.Conv2D(filters, 3, padding="same")(r)
        r = L.BatchNormalization()(r)
        if stride == 1:
            shortcut = y
        else:
            shortcut = L.Conv2D(filters, 1, strides=stride)(y)
            shortcut = L.BatchNormalization()(shortcut)
        y = L.Add(name=f"add{stride}")([r, shortcut])
        y = L.Activation("relu")(y)
    y = L.GlobalAveragePooling2D()(y)
    y = L.Dense(classes)(y)
    model = keras.Model(x, y)
    return randomize_batch_norm(model) if randomize else model


def images(shape, n=6, scale=1.0, seed=1):
    return (np.random.default_rng(seed).random((n,) + shape, dtype=np.float32) * scale)


def assert_ann_mode_equals(ann, snn, x, rtol=1e-4):
    expected = np.asarray(ann(x))
    actual = np.asarray(tk.with_mode(snn, "ann")(x))
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("calibrate", [False, True])
def test_small_cnn_ann_mode_is_the_ann(calibrate):
    ann = small_cnn()
    x = images((12, 12, 3), scale=255.0)
    snn, report = tk.convert(ann, time_steps=4, calibration_data=x if calibrate else None,
                             return_report=True)
    assert_ann_mode_equals(ann, snn, x)
    kinds = [type(layer).__name__ for layer in snn.layers]
    assert kinds == ["InputLayer", "Rescaling", "Normalization", "Conv2D", "BatchNormalization",
                     "SpikeEncoder", "TandemConv2D", "TimeDistributed", "AveragePooling2D",
                     "TandemConv2D", "Dropout", "TimeFlatten", "TandemDense", "SpikeCount", "Dense"]
    assert snn.layers[-1].get_config()["activation"] == "softmax"
    thresholds = list(report.thresholds.values())
    assert len(thresholds) == 4
    if calibrate:  # calibrated thresholds differ from the ANN's 1 and the kernels absorbed them
        assert all(t != 1.0 for t in thresholds)
    else:
        assert thresholds == [1.0] * 4
    # the SNN runs and emits spikes
    assert snn(x).shape == (6, 5)


@pytest.mark.parametrize("calibrate", [False, True])
def test_small_resnet_ann_mode_is_the_ann(calibrate):
    ann = small_resnet()
    x = images((8, 8, 3), scale=2.0)
    snn, report = tk.convert(ann, time_steps=3, calibration_data=x if calibrate else None,
                             return_report=True)
    assert_ann_mode_equals(ann, snn, x)
    adds = [layer for layer in snn.layers if isinstance(layer, tk.TandemAdd)]
    synapse_only = [layer.name for layer in snn.layers
                    if isinstance(layer, tk.TandemLayer) and layer.neuron is None]
    assert len(adds) == 2 and len(synapse_only) == 3   # two residual convs, one projection
    # identity shortcut: the encoder's spikes, weighted by its threshold; then two currents
    first, second = snn.get_layer("add1"), snn.get_layer("add2")
    assert first.scales == [1.0, report.thresholds["relu0"]]
    assert second.scales == [1.0, 1.0]
    assert (report.thresholds["relu0"] != 1.0) == calibrate
    assert snn(x).shape == (6, 4)


def test_sequential_and_the_readout_keeps_its_activation():
    ann = keras.Sequential([keras.Input((5, 5, 2)), L.Conv2D(3, 3, activation="relu"),
                            L.Flatten(), L.Dense(7, activation="relu"), L.Dense(3, activation="sigmoid")])
    x = images((5, 5, 2))
    snn = tk.convert(ann, time_steps=2, calibration_data=x)
    assert_ann_mode_equals(ann, snn, x)
    assert [type(layer).__name__ for layer in snn.layers][-3:] == ["TandemDense", "SpikeCount", "Dense"]


def test_readout_activation_as_its_own_layer():
    ann = keras.Sequential([keras.Input((5, 5, 2)), L.Conv2D(3, 3, activation="relu"), L.Flatten(),
                            L.Dense(4), L.Activation("softmax"), L.Softmax()])
    x = images((5, 5, 2))
    snn = tk.convert(ann, time_steps=2, calibration_data=x)
    assert_ann_mode_equals(ann, snn, x)
    assert [type(layer).__name__ for layer in snn.layers][-4:] == ["SpikeCount", "Dense", "Activation", "Softmax"]


def test_threshold_calibration_is_the_percentile_of_the_ann_activation():
    ann = small_cnn()
    x = images((12, 12, 3), n=20, scale=255.0)
    T, p = 4, 99.0
    snn, report = tk.convert(ann, time_steps=T, calibration_data=(x, np.zeros(20)), percentile=p,
                             batch_size=8, calibration_batches=3, return_report=True)
    relus = [layer for layer in ann.layers if isinstance(layer, (L.ReLU, L.Activation))]
    assert relus[0].name == "relu0"
    outputs = [relus[0].output, ann.get_layer("conv_relu").output, relus[1].output, relus[2].output]
    activations = keras.Model(ann.input, outputs)(x[:24])  # 3 batches of 8: all 20 images
    expected = [np.percentile(np.asarray(a), p) / T for a in activations]
    np.testing.assert_allclose(list(report.thresholds.values()), expected, rtol=1e-5)
    assert report.percentile == p


def test_thresholds_by_hand_and_unknown_names():
    ann = small_cnn()
    x = images((12, 12, 3), scale=255.0)
    snn = tk.convert(ann, time_steps=4, thresholds={"relu0": 3.0})
    encoder = next(layer for layer in snn.layers if isinstance(layer, tk.SpikeEncoder))
    assert encoder.name == "relu0" and encoder.threshold == 3.0
    assert_ann_mode_equals(ann, snn, x)
    with pytest.raises(ValueError, match="not spiking layers.*nope"):
        tk.convert(ann, time_steps=4, thresholds={"nope": 2.0})


def test_initial_potential_reaches_every_spiking_layer():
    ann = small_resnet()
    neuron = tk.neurons.IF(initial_potential=0.5)
    snn = tk.convert(ann, time_steps=3, neuron=neuron)
    spiking = [layer for layer in snn.layers if "threshold" in layer.get_config()
               and getattr(layer, "neuron", 0) is not None]
    assert len(spiking) == 5 and all(layer.neuron == neuron for layer in spiking)
    assert_ann_mode_equals(ann, snn, images((8, 8, 3)))


def test_defaults_half_step_neuron_and_one_warning_line_without_calibration():
    ann = small_resnet()
    with pytest.warns(UserWarning) as caught:
        snn = tk.convert(ann, time_steps=3)
    lines = [str(w.message) for w in caught if "calibration_data" in str(w.message)]
    assert len(lines) == 1 and "\n" not in lines[0] and "5 spiking layers" in lines[0]
    spiking = [layer for layer in snn.layers if getattr(layer, "neuron", None) is not None]
    assert len(spiking) == 5
    assert all(layer.neuron == tk.neurons.IF(initial_potential=0.5, negative_spikes=True) for layer in spiking)
    binary = tk.convert(ann, time_steps=3, thresholds={layer.name: 1.0 for layer in spiking},
                        negative_spikes=False)
    binary_neurons = [layer.neuron for layer in binary.layers if getattr(layer, "neuron", None) is not None]
    assert len(binary_neurons) == 5
    assert all(n == tk.neurons.IF(initial_potential=0.25, rounding=0.5) for n in binary_neurons)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tk.convert(ann, time_steps=3, calibration_data=images((8, 8, 3)))
        tk.convert(ann, time_steps=3, thresholds={layer.name: 1.0 for layer in spiking})


def _template_task(n, classes=4, noise=0.15, seed=0):
    """Images of ``classes`` fixed random patterns, each example its pattern plus noise."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((classes, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, classes, n)
    x = np.clip(patterns[y] + rng.normal(0, noise, (n, 8, 8, 3)), 0, 1).astype(np.float32)
    return x, y


def test_defaults_convert_a_trained_residual_ann_into_a_working_snn():
    """A small residual ANN trained to 100% on noisy patterns: the default neuron (V(0) =
    theta/4, rounding 1/2) keeps the SNN working at T = 4 where the paper's IF loses half."""
    keras.utils.set_random_seed(0)
    ann = small_resnet(randomize=False, classes=10)
    for layer in ann.layers:   # moving statistics that follow a short training
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9
    x, y = _template_task(640, classes=10, noise=0.3)
    ann.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    ann.fit(x[:384], y[:384], epochs=15, batch_size=32, verbose=0)
    x_test, y_test = x[384:], y[384:]

    def accuracy(model):
        return np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test)

    assert accuracy(ann) > 0.97
    default = accuracy(tk.convert(ann, time_steps=4, calibration_data=x[:256]))
    paper = accuracy(tk.convert(ann, time_steps=4, calibration_data=x[:256], neuron="if"))
    assert default > 0.8 and default > paper + 0.2, (default, paper)


def test_max_pooling_is_replaced_with_a_warning_or_kept_as_spiking_max_pooling():
    ann = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, padding="same", activation="relu"),
                            L.MaxPooling2D(name="max_pooling2d"), L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(2)])
    x = images((8, 8, 1), scale=3.0)   # the name is given: Keras's automatic names depend on earlier tests
    with pytest.warns(UserWarning, match="max_pooling2d.*MaxPooling2D.*average pooling"):
        snn, report = tk.convert(ann, time_steps=4, return_report=True)
    assert report.replaced_max_pooling == ["max_pooling2d"]
    assert "max pooling replaced by average pooling: max_pooling2d" in str(report)
    assert isinstance(snn.get_layer("max_pooling2d"), tk.AveragePooling2D)
    # the ANN with average pooling instead is what the converted model computes in ann mode
    averaged = keras.models.clone_model(ann, clone_function=lambda layer: L.AveragePooling2D.from_config(
        layer.get_config()) if isinstance(layer, L.MaxPooling2D) else layer.__class__.from_config(layer.get_config()))
    averaged.set_weights(ann.get_weights())
    assert_ann_mode_equals(averaged, snn, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spiking = tk.convert(ann, time_steps=4, max_pooling="spiking", calibration_data=x)
    assert isinstance(spiking.get_layer("max_pooling2d"), tk.MaxPooling2D)
    assert_ann_mode_equals(ann, spiking, x)   # max commutes with the positive scale
    # spiking max pooling is an OR of 0/1 spikes: the default neuron without negative spikes,
    # and negative spikes asked for are refused naming the pooling layer
    assert not any(getattr(layer, "neuron", None) and layer.neuron.negative_spikes for layer in spiking.layers)
    with pytest.raises(ValueError, match="max_pooling2d.*signed spikes"):
        tk.convert(ann, time_steps=4, max_pooling="spiking", calibration_data=x, negative_spikes=True)


def test_converted_model_round_trips_through_keras_file(tmp_path):
    ann = small_resnet()
    x = images((8, 8, 3), scale=2.0)
    snn = tk.convert(ann, time_steps=3, calibration_data=x)
    path = str(tmp_path / "snn.keras")
    snn.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(snn(x)))


def test_converted_model_fine_tunes_with_fit():
    ann = small_resnet()
    x = images((8, 8, 3), n=32, scale=2.0)
    y = np.arange(32) % 4
    snn = tk.convert(ann, time_steps=3, calibration_data=x)
    snn.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                run_eagerly=True)   # tracing the train step takes longer than 4 eager epochs
    before = [np.asarray(w).copy() for w in snn.trainable_weights]
    history = snn.fit(x, y, epochs=4, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    changed = [not np.array_equal(b, np.asarray(w)) for b, w in zip(before, snn.trainable_weights)]
    assert all(changed)   # every weight (kernels, BN gamma/beta, readout) got a tandem gradient


def _refusal(model):
    with pytest.raises(ConversionError) as info:
        tk.convert(model, time_steps=2)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("make_layer, type_name", [
    (lambda: L.LeakyReLU(), "LeakyReLU"),
    (lambda: L.ReLU(max_value=6.0), "ReLU"),
    (lambda: L.DepthwiseConv2D(3, padding="same"), "DepthwiseConv2D"),
    (lambda: L.Activation("tanh"), "Activation"),
    (lambda: L.Softmax(), "Softmax"),
    (lambda: L.LayerNormalization(), "LayerNormalization"),
])
def test_unsupported_layers_are_refused_in_one_line(make_layer, type_name):
    x = keras.Input((6, 6, 2))
    y = L.Conv2D(4, 3, activation="relu", padding="same")(x)
    y = make_layer()(y)
    y = L.Flatten()(y)
    layer = L.Dense(3)
    model = keras.Model(x, layer(y))
    odd = model.layers[2]
    message = _refusal(model)
    assert f"'{odd.name}' ({type_name})" in message


def test_structural_refusals_name_the_layer():
    x = keras.Input((6, 6, 2))
    y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_relu")(y)
    y = L.BatchNormalization(name="bn_after_relu")(y)
    bad_bn = keras.Model(x, L.Dense(2)(L.Flatten()(y)))
    assert "'bn_after_relu' (BatchNormalization) does not follow" in _refusal(bad_bn)

    x = keras.Input((6, 6, 2))
    y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    a = L.Conv2D(4, 3, padding="same")(y)
    s = L.Add(name="plain_add")([a, y])
    no_relu = keras.Model(x, L.Dense(2)(L.Flatten()(s)))
    assert "'plain_add' (Add) is not followed by a ReLU" in _refusal(no_relu)

    x = keras.Input((6, 6, 2))
    y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(4, 3, padding="same", activation="tanh", name="tanh_conv")(y)
    inner_tanh = keras.Model(x, L.Dense(2)(L.Flatten()(y)))
    assert "'tanh_conv' (Conv2D) has activation='tanh'" in _refusal(inner_tanh)

    x = keras.Input((6, 6, 2))
    y = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(4, 3, padding="same", name="linear_conv")(y)
    y = L.Conv2D(4, 3, padding="same", activation="relu")(y)
    linear_inside = keras.Model(x, L.Dense(2)(L.Flatten()(y)))
    assert "'linear_conv' (Conv2D) is followed by neither a ReLU nor an Add" in _refusal(linear_inside)


@pytest.mark.parametrize("make_activation, type_name, reason", [
    (lambda: L.ReLU(max_value=6.0), "ReLU", "max_value=6: only an unbounded ReLU converts"),
    (lambda: L.Activation("relu6"), "Activation", "activation='relu6': only an unbounded ReLU converts"),
    (lambda: L.LeakyReLU(negative_slope=0.2), "LeakyReLU", "negative_slope=0.2: a leaky ReLU has negative outputs"),
    (lambda: L.ReLU(negative_slope=0.1), "ReLU", "negative_slope=0.1: a leaky ReLU has negative outputs"),
    (lambda: L.ReLU(threshold=0.5), "ReLU", "threshold=0.5: only a ReLU with threshold 0 converts"),
    (lambda: L.Activation("swish"), "Activation", "activation='silu': only ReLU converts inside the network"),
    (lambda: L.ELU(), "ELU", "ELU has negative outputs"),
])
@pytest.mark.parametrize("where", ["conv_bn", "conv", "add"])
def test_an_activation_that_does_not_convert_is_named_with_its_reason(make_activation, type_name,
                                                                      reason, where):
    """The refusal names the activation layer, its type and why (MobileNetV2's ReLU6, a
    LeakyReLU, a swish), not the Conv2D or Add before it; after a Conv2D (+ BN), after a
    residual Add."""
    x = keras.Input((6, 6, 2))
    y = L.Conv2D(4, 3, activation="relu", padding="same")(x)
    z = L.Conv2D(4, 3, padding="same", name="conv_before")(y)
    if where == "conv_bn":
        z = L.BatchNormalization(name="bn_before")(z)
    if where == "add":
        z = L.Add(name="add_before")([z, y])
    odd = make_activation()
    z = odd(z)
    model = keras.Model(x, L.Dense(2)(L.Flatten()(L.Conv2D(4, 3, activation="relu")(z))))
    message = _refusal(model)
    assert f"'{odd.name}' ({type_name}): {reason}" in message
    assert "conv_before" not in message and "add_before" not in message and "bn_before" not in message


def test_a_model_without_a_relu_is_refused_naming_its_first_activation():
    """Layers before the first ReLU are kept as the analog front end; a model with no ReLU
    at all (ReLU6 or swish throughout) would convert to the ANN itself: refused."""
    x = keras.Input((6, 6, 2))
    y = L.Activation("relu6", name="first_relu6")(L.Conv2D(4, 3)(x))
    y = L.Activation("relu6")(L.Conv2D(4, 3)(y))
    message = _refusal(keras.Model(x, L.Dense(2)(L.Flatten()(y))))
    assert "has no ReLU to become spiking neurons" in message
    assert "'first_relu6' (Activation): activation='relu6': only an unbounded ReLU converts" in message
    x = keras.Input((4,))
    assert "has no ReLU" in _refusal(keras.Model(x, L.Dense(2)(L.Dense(3)(x))))


def test_bad_arguments():
    ann = small_cnn()
    with pytest.raises(ValueError, match="time_steps"):
        tk.convert(ann, time_steps=0)
    with pytest.raises(ValueError, match="max_pooling"):
        tk.convert(ann, time_steps=2, max_pooling="min")
    with pytest.raises(ValueError, match="keras.Model"):
        tk.convert(L.Dense(2), time_steps=2)
    with pytest.raises(ValueError, match="percentile"):
        tk.convert(ann, time_steps=2, calibration_data=images((12, 12, 3)), percentile=0)
