"""Models that use a model as a layer (a backbone, ``keras.applications`` style), and models
with two inputs, on every path that walks a model's graph.

The reference of a nested model is the flat model of the same layers and weights: switched
modes, SynOps, the exports and the conversion must give the same numbers. The two-input
model's SynOps are checked against a count by hand (Eq. 13) from its spike counts.
"""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tandem_keras._keras_internals import all_layers

T = 4


def _backbone_layers():
    return [keras.layers.Rescaling(1 / 64, name="scale"), tk.SpikeEncoder(T, name="encoder"),
            tk.TandemConv2D(6, 3, name="conv1"), tk.TandemConv2D(8, 3, strides=2, name="conv2")]


def _head_layers():
    return [tk.TimeFlatten(name="flatten"), tk.TandemDense(12, name="fc"), tk.SpikeCount(name="count"),
            keras.layers.Dense(5, name="logits")]


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def _flat():
    x = keras.Input((8, 8, 1), name="images")
    return keras.Model(x, _apply(_head_layers(), _apply(_backbone_layers(), x)), name="flat")


def _nested(sequential=False, training=None):
    if sequential:
        backbone = keras.Sequential([keras.Input((8, 8, 1))] + _backbone_layers(), name="backbone")
    else:
        inner = keras.Input((8, 8, 1))
        backbone = keras.Model(inner, _apply(_backbone_layers(), inner), name="backbone")
    x = keras.Input((8, 8, 1), name="images")
    h = backbone(x) if training is None else backbone(x, training=training)
    return keras.Model(x, _apply(_head_layers(), h), name="nested")


def _layer_map(model):
    return {layer.name: layer for layer in all_layers(model) if layer.weights}


def _same_weights(source, target):
    """Random weights (BN statistics included) into ``source``, copied into ``target`` by name."""
    rng = np.random.default_rng(5)
    targets = _layer_map(target)
    for name, layer in _layer_map(source).items():
        values = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if "variance" in w.path:
                values.append(rng.uniform(0.5, 2.0, shape))
            elif "gamma" in w.path:
                values.append(rng.uniform(0.7, 1.3, shape))
            else:
                values.append(rng.normal(0.0, 0.4, shape))
        layer.set_weights(values)
        targets[name].set_weights(values)


@pytest.fixture(scope="module")
def pair():
    flat, nested = _flat(), _nested()
    _same_weights(flat, nested)
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 1)).astype("float32")
    return flat, nested, x


@pytest.mark.parametrize("mode", ["quantized", "bptt", "ann", "tandem"])
def test_with_mode_switches_the_backbone_layers(pair, mode):
    flat, nested, x = pair
    switched = tk.with_mode(nested, mode)
    assert not any(isinstance(layer, keras.Model) for layer in switched.layers)
    modes = {layer.name: layer.mode for layer in switched.layers if hasattr(layer, "mode")}
    assert set(modes) == {"encoder", "conv1", "conv2", "fc"} and set(modes.values()) == {mode}
    assert nested.get_layer("backbone").get_layer("conv1").mode == "tandem"   # the user's is untouched
    expected = tk.with_mode(flat, mode).predict(x, verbose=0)
    np.testing.assert_allclose(switched.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    if mode == "quantized":
        np.testing.assert_raises(AssertionError, np.testing.assert_allclose,
                                 expected, flat.predict(x, verbose=0))  # the mode changed the numbers
    # the copy trains (its own weights): one fit step in graph mode
    switched.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    switched.fit(x, np.arange(16) % 5, epochs=1, verbose=0)


def test_sequential_backbone_called_with_training_false():
    """A Sequential backbone called as ``backbone(x, training=False)`` (Keras's fine-tuning
    idiom): the flat copy computes what Keras computes for the nested model, in inference and
    in training (batch statistics, in this Keras, as the call context says)."""
    nested, flat = _nested(sequential=True, training=False), _flat()
    _same_weights(flat, nested)
    x = np.random.default_rng(1).uniform(0, 255, (8, 8, 8, 1)).astype("float32")
    copy = tk.with_mode(nested, "tandem")
    inference = np.asarray(flat(x, training=False))
    np.testing.assert_allclose(np.asarray(copy(x, training=False)), inference, rtol=1e-5, atol=1e-5)
    training = np.asarray(copy(x, training=True))
    np.testing.assert_allclose(training, np.asarray(nested(x, training=True)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(training, inference, atol=1e-3)


def test_synops_summary_and_exports_equal_the_flat_model(pair, tmp_path):
    flat, nested, x = pair
    expected = tk.count_synops(flat, x)
    got = tk.count_synops(nested, x)
    assert got == expected and got["synops_snn"] > 0
    assert tk.summary(nested, x, print_fn=None) == expected
    lines = []
    tk.summary(nested, print_fn=lines.append)
    assert "conv1" in lines[0] and "fc" in lines[0]

    metadata = tk.export_model(nested, str(tmp_path / "nested"), keras_file="model.keras")
    reference = tk.export_model(flat, str(tmp_path / "flat"))
    for key in ("layers", "time_steps", "spiking_depth", "mode", "decoding", "neuron"):
        assert metadata[key] == reference[key], key
    with open(tmp_path / "nested" / "assets" / "tandem_keras.json") as f:
        assert json.load(f)["mode"] == "tandem"
    loaded, flat_loaded = (tf.saved_model.load(str(tmp_path / n)) for n in ("nested", "flat"))
    np.testing.assert_allclose(np.asarray(loaded.serve(x)), nested.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    activity, flat_activity = loaded.serve_activity(x), flat_loaded.serve_activity(x)
    assert set(activity) == set(flat_activity)
    for key in activity:
        np.testing.assert_allclose(np.asarray(activity[key]), np.asarray(flat_activity[key]), rtol=1e-5, atol=1e-5)
    reloaded = keras.models.load_model(str(tmp_path / "nested" / "model.keras"))
    assert isinstance(reloaded.get_layer("backbone"), keras.Model)    # the user's model, as given


def test_export_nir_equals_the_flat_model(pair, tmp_path):
    pytest.importorskip("nir")
    flat, nested, x = pair
    graph = tk.export_nir(nested, str(tmp_path / "nested.nir"))
    reference = tk.export_nir(flat)
    assert list(graph.nodes) == list(reference.nodes) and graph.edges == reference.edges
    for name, node in reference.nodes.items():
        for key, value in vars(node).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(graph.nodes[name], key), value, err_msg=f"{name}.{key}")
    np.testing.assert_array_equal(tk.encode_for_nir(nested, x), tk.encode_for_nir(flat, x))
    assert os.path.getsize(tmp_path / "nested.nir") > 0


def test_convert_of_an_ann_with_a_backbone_equals_the_flat_ann():
    L = keras.layers

    def backbone_layers():
        return [L.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
                L.Conv2D(8, 3, padding="same", name="c2"), L.BatchNormalization(name="bn2"),
                L.ReLU(name="r2")]

    def head(h):
        return L.Dense(5, name="out")(L.Flatten(name="fl")(h))

    x_in = keras.Input((8, 8, 1))
    flat_ann = keras.Model(x_in, head(_apply(backbone_layers(), x_in)))
    inner = keras.Input((8, 8, 1))
    backbone = keras.Model(inner, _apply(backbone_layers(), inner), name="backbone")
    y_in = keras.Input((8, 8, 1))
    nested_ann = keras.Model(y_in, head(backbone(y_in)))
    _same_weights(flat_ann, nested_ann)
    x = np.random.default_rng(2).uniform(0, 1, (16, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(nested_ann.predict(x, verbose=0), flat_ann.predict(x, verbose=0), rtol=1e-5)
    snn, report = tk.convert(nested_ann, time_steps=T, calibration_data=x, return_report=True)
    flat_snn = tk.convert(flat_ann, time_steps=T, calibration_data=x)
    np.testing.assert_allclose(snn.predict(x, verbose=0), flat_snn.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert "c2" in str(report)


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = tk.TandemConv2D(4, 3)

    def call(self, x):
        return self.conv(x)


def test_a_nested_subclassed_model_is_refused_in_one_line_naming_it(tmp_path):
    x = keras.Input((8, 8, 1))
    s = tk.SpikeEncoder(T)(x)
    h = _Subclassed(name="my_block")(s)
    model = keras.Model(x, keras.layers.Dense(3)(tk.SpikeCount()(tk.TimeFlatten()(h))))
    calls = [lambda: tk.with_mode(model, "ann"), lambda: tk.count_synops(model, np.zeros((1, 8, 8, 1))),
             lambda: tk.summary(model), lambda: tk.export_model(model, str(tmp_path / "e")),
             lambda: tk.export_nir(model), lambda: tk.convert(model, time_steps=T)]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "'my_block'" in message and "\n" not in message.strip(), message
    assert not os.path.exists(tmp_path / "e")


# ---------------------------------------------------------------------------- two inputs
def _two_inputs():
    a, b = keras.Input((5,), name="a"), keras.Input((3,), name="b")
    sa = tk.SpikeEncoder(T, name="enc_a")(a)
    sb = tk.SpikeEncoder(T, name="enc_b")(b)
    ha = tk.TandemDense(4, name="fc_a")(sa)
    hb = tk.TandemDense(6, name="fc_b")(sb)
    h = keras.layers.Concatenate(name="join")([ha, hb])
    out = keras.layers.Dense(2, name="out")(tk.SpikeCount(name="count")(h))
    return keras.Model([a, b], out)


def test_count_synops_and_summary_of_a_two_input_model_equal_a_count_by_hand():
    model = _two_inputs()
    rng = np.random.default_rng(7)
    x1, x2 = rng.uniform(0, 5, (10, 5)).astype("float32"), rng.uniform(0, 5, (10, 3)).astype("float32")
    names = ["enc_a", "enc_b", "fc_a", "fc_b"]
    probe = keras.Model(model.inputs, [keras.ops.sum(model.get_layer(n).output, axis=1) for n in names])
    counts = dict(zip(names, (np.asarray(c).sum(axis=1).mean() for c in probe.predict([x1, x2], verbose=0))))
    np.testing.assert_array_equal(probe.predict([x1, x2], verbose=0)[0],
                                  np.clip(np.floor(x1), 0, T))      # the front-loaded code (method §2)
    # Eq. 13: every spike reaches all neurons of the dense layer it feeds
    by_hand = {"enc_a": 4 * counts["enc_a"], "enc_b": 6 * counts["enc_b"],
               "fc_a": 2 * counts["fc_a"], "fc_b": 2 * counts["fc_b"]}
    report = tk.count_synops(model, [x1, x2], batch_size=4)
    assert report["examples"] == 10
    rows = {row["name"]: row for row in report["layers"]}
    for name, value in by_hand.items():
        assert rows[name]["synops"] == pytest.approx(value, rel=1e-6), name
    assert report["synops_snn"] == pytest.approx(sum(by_hand.values()), rel=1e-6)
    assert report["synops_ann"] == 5 * 4 + 3 * 6 + 10 * 2     # Eq. 14: fan-in x neurons
    assert tk.count_synops(model, {"a": x1, "b": x2}) == report
    assert tk.summary(model, [x1, x2], print_fn=None) == report
    dataset = tf.data.Dataset.from_tensor_slices(((x1, x2), np.zeros(10))).batch(3)
    assert tk.count_synops(model, dataset) == report
    with pytest.raises(ValueError, match="one array per model input"):
        tk.count_synops(model, [x1, x2[:5]])
    with pytest.raises(ValueError, match="the model has 2 inputs"):
        tk.count_synops(model, x1)
