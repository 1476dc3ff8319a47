"""Round trips: get_config/from_config, `.keras` save/load and `model.export()`, for
Sequential, functional and subclassed models, in every mode.

References: the original model's own outputs and weights (a round trip must reproduce
them exactly), plus the layer configuration given at construction.
"""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk

T = 3


def layer_zoo():
    return [
        (tk.SpikeEncoder(5, threshold=0.5, mode="quantized", name="enc"), (2, 4, 4, 2)),
        (tk.TandemConv2D(3, (3, 2), strides=2, padding="valid", threshold=0.75,
                         batch_norm=True, surrogate="relu", mode="bptt", use_bias=False,
                         momentum=0.95, epsilon=1e-2, name="tconv"), (2, 4, 7, 7, 2)),
        (tk.TandemDense(4, threshold=2.0, batch_norm=False, surrogate="bounded_relu",
                        mode="tandem", kernel_initializer="he_normal", name="tdense"), (2, 4, 6)),
        (tk.SpikeCount(name="count"), (2, 4, 3)),
        (tk.TimeFlatten(name="flat"), (2, 4, 3, 2)),
    ]


@pytest.mark.parametrize("index", range(5))
def test_layer_config_round_trip(index):
    layer, shape = layer_zoo()[index]
    rng = np.random.default_rng(index)
    x = (rng.random(shape) < 0.5).astype(np.float32)
    y = np.asarray(layer(x))
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # the constructor arguments survive (time_steps of tandem layers is read at build)
    clone(x)
    for key in ("time_steps", "threshold", "mode", "surrogate", "batch_norm", "use_bias",
                "momentum", "epsilon", "strides", "padding", "units", "filters"):
        if hasattr(layer, key):
            assert getattr(clone, key) == getattr(layer, key), key
    # and so does the computation, given the same weights
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), y)
    # generic Keras (de)serialization finds the registered class
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(again) is type(layer) and again.get_config() == config


def test_layer_config_values():
    conv = tk.TandemConv2D(3, 3, strides=2, threshold=0.75, surrogate="relu", mode="quantized")
    cfg = conv.get_config()
    assert cfg["filters"] == 3 and tuple(cfg["strides"]) == (2, 2) and cfg["threshold"] == 0.75
    assert cfg["surrogate"] == "relu" and cfg["mode"] == "quantized" and cfg["batch_norm"] is True
    enc = tk.SpikeEncoder(7, threshold=0.25).get_config()
    assert enc["time_steps"] == 7 and enc["threshold"] == 0.25


# ----------------------------------------------------------------------------- models
def sequential(mode="tandem"):
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(4, 3, padding="same"),
        keras.layers.BatchNormalization(),
        tk.SpikeEncoder(T, mode=mode),
        tk.TandemConv2D(5, 3, strides=2, mode=mode),
        tk.TimeFlatten(),
        tk.TandemDense(6, mode=mode),
        tk.SpikeCount(),
        keras.layers.Dense(3),
    ])


def functional():
    inputs = keras.Input((6, 6, 1))
    v = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, padding="same")(inputs))
    s = tk.SpikeEncoder(T)(v)
    a = tk.TandemConv2D(4, 3, strides=2)(s)
    b = tk.TandemConv2D(4, 3, strides=2, threshold=0.5, surrogate="relu")(s)
    s = keras.layers.Concatenate(axis=-1)([a, b])           # keeps the time axis
    s = tk.TandemDense(5, batch_norm=False)(tk.TimeFlatten()(s))   # spike-count readout
    counts = tk.SpikeCount()(s)
    return keras.Model(inputs, counts)


@keras.saving.register_keras_serializable(package="tandem_keras_tests")
class SubclassedSNN(keras.Model):
    def __init__(self, time_steps=T, units=6, **kwargs):
        super().__init__(**kwargs)
        self.time_steps, self.units = time_steps, units
        self.conv = keras.layers.Conv2D(4, 3, padding="same")
        self.bn = keras.layers.BatchNormalization()
        self.encoder = tk.SpikeEncoder(time_steps)
        self.tconv = tk.TandemConv2D(5, 3, strides=2)
        self.flat = tk.TimeFlatten()
        self.tdense = tk.TandemDense(units)
        self.count = tk.SpikeCount()
        self.head = keras.layers.Dense(3)

    def call(self, x, training=False):
        v = self.bn(self.conv(x), training=training)
        s = self.tdense(self.flat(self.tconv(self.encoder(v), training=training)),
                        training=training)
        return self.head(self.count(s))

    def get_config(self):
        return {"name": self.name, "time_steps": self.time_steps, "units": self.units}


BUILDERS = {"sequential": sequential, "functional": functional, "subclassed": SubclassedSNN}


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2, (n, 6, 6, 1)).astype(np.float32)
    return x, rng.normal(size=(n, 3)).astype(np.float32)


def randomized(model, seed=0):
    """Builds the model and gives every weight (BN moving statistics included) random
    values, so a round trip that dropped or reset any of them would show."""
    rng = np.random.default_rng(seed)
    model(data()[0][:1])
    for w in model.weights:
        name = w.path.split("/")[-1]
        if name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, w.shape)
        elif name in ("beta", "bias"):
            value = rng.normal(0.5, 0.5, w.shape)
        else:
            value = rng.normal(0.0, 0.6, w.shape)
        w.assign(value.astype(np.float32))
    return model


def check_nontrivial(out):
    assert np.isfinite(out).all() and np.ptp(out, axis=0).max() > 0


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_keras_file_round_trip(kind, tmp_path):
    model = randomized(BUILDERS[kind]())
    x, _ = data(seed=2)
    expected = np.asarray(model(x, training=False))
    check_nontrivial(expected)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), expected)


def test_compiled_model_round_trip_continues_training(tmp_path):
    """fit, save, load: same predictions and optimizer state, and fit goes on."""
    keras.utils.set_random_seed(1)
    model = sequential()
    x, y = data()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)),
                                  np.asarray(model(x, training=False)))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    moving = [w for w in loaded.weights if w.path.endswith("moving_mean") and "tandem" in w.path]
    assert moving and all(np.abs(np.asarray(w)).max() > 0 for w in moving)
    history = loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("mode", ["tandem", "quantized", "ann", "bptt"])
def test_keras_file_round_trip_keeps_mode(mode, tmp_path):
    model = randomized(sequential(mode), seed=1)
    x, _ = data(seed=4)
    expected = np.asarray(model(x, training=False))
    check_nontrivial(expected)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    modes = {l.mode for l in loaded.layers if hasattr(l, "mode")}
    assert modes == {mode}
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), expected)


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_export_round_trip(kind, tmp_path):
    model = randomized(BUILDERS[kind](), seed=3)
    x, _ = data(seed=5)
    expected = np.asarray(model(x, training=False))
    check_nontrivial(expected)
    export_dir = os.path.join(tmp_path, "export")
    model.export(export_dir)
    reloaded = tf.saved_model.load(export_dir)
    got = np.asarray(reloaded.serve(tf.constant(x)))
    np.testing.assert_array_equal(got, expected)
    # the exported function is the SNN in inference mode: a batch of one gives the same
    # answer as inside the batch (no batch statistics). Not bit for bit: the float readout
    # of one image may sum in another order than inside the batch (oneDNN picks another
    # kernel for batch 1 on CPUs without AVX-512: 1 ulp on an AMD EPYC); batch statistics
    # would move the logits by far more than this tolerance.
    np.testing.assert_allclose(np.asarray(reloaded.serve(tf.constant(x[:1]))), expected[:1],
                               rtol=1e-6, atol=1e-6)


def test_encoder_current_mode_round_trip_and_values():
    """encoding="current": the same analog current clip(v/theta, 0, T)/T at every step."""
    v = np.array([[-1.0, 0.3, 1.7, 9.0]], np.float32)
    enc = tk.SpikeEncoder(4, threshold=0.5, encoding="current")
    out = np.asarray(enc(v))
    assert out.shape == (1, 4, 4)
    expected = np.clip(v / 0.5, 0, 4) / 4
    np.testing.assert_allclose(out, np.broadcast_to(expected[:, None], out.shape), rtol=1e-6)
    clone = tk.SpikeEncoder.from_config(enc.get_config())
    assert clone.encoding == "current"
    np.testing.assert_array_equal(np.asarray(clone(v)), out)


@pytest.mark.parametrize("name", ["medium_tandem_T4", "medium_quantized_T4"])
def test_committed_keras_files_load_and_compute_what_their_savedmodels_do(name):
    """The committed exports (bench/models), written before neurons, pooling and residual
    layers existed: their model.keras loads with today's layers (the IF neuron by default)
    and gives the logits of the SavedModel traced back then, bit for bit."""
    model, got, expected = _committed_export(name)
    assert all(layer.neuron == tk.neurons.IF() for layer in model.layers if isinstance(layer, tk.TandemLayer))
    np.testing.assert_array_equal(got, expected)


def _committed_export(name):
    """bench/models/NAME's model.keras, loaded, with its logits and the SavedModel's on four
    random images (skips if the export is not in this checkout)."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "models", name)
    if not os.path.exists(os.path.join(path, "model.keras")):
        pytest.skip(f"{path}/model.keras is not in this checkout")
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    model = keras.models.load_model(os.path.join(path, "model.keras"))
    saved = tf.saved_model.load(path)
    expected = np.asarray(list(saved.signatures["serving_default"](tf.constant(x)).values())[0])
    return model, model.predict(x, verbose=0), expected


@pytest.mark.parametrize("name", ["vgg11_w2_fp32_ann", "vgg11_w2_T4_converted"])
def test_committed_conversion_exports_load_and_agree_with_their_savedmodels(name):
    """The committed VGG-11/2 ANN and its converted, fine-tuned SNN (issue 19): model.keras
    loads, the SNN is in tandem mode with V(0) = theta/2, and both compute the SavedModel's
    logits (float tolerance: the SavedModel may have been traced on another CPU)."""
    model, got, expected = _committed_export(name)
    tandem = [layer for layer in model.layers if isinstance(layer, tk.TandemLayer)]
    if name.endswith("_ann"):
        assert {layer.mode for layer in tandem} == {"ann"}
    else:
        assert {layer.mode for layer in tandem} == {"tandem"}
        assert all(layer.neuron.initial_potential == 0.5 for layer in tandem if layer.neuron is not None)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert (got.argmax(-1) == expected.argmax(-1)).all()
