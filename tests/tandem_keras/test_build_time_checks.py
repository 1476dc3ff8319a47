"""What a layer's output carries, read from the model's graph (tandem_keras.kinds): graphs
that cannot run are refused when the model is built, in one line naming the layer that made
the input and what to use instead; graphs that can run (exact currents joined or reshaped by
Keras layers) train and predict in graph mode. Each case is the user's path: the graph built
as a user would, ``fit`` and ``predict``.
"""
import keras
import numpy as np
import pytest

import tandem_keras as tk
from tests.tandem_keras.test_neurons_reference import (assert_spikes_match, avg_pool_np,
                                                       global_avg_np, neuron_np)

L = keras.layers


def _front(shape=(6, 6, 2), t=4):
    inp = keras.Input(shape)
    x = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(inp))
    return inp, tk.SpikeEncoder(t, name="encoder")(x)


def _one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_keras_batch_normalization_between_tandem_layers_refused_when_built():
    inp, s = _front()
    h = tk.TandemConv2D(4, 3, name="first")(s)
    h = L.BatchNormalization(name="bn")(h)
    with pytest.raises(ValueError, match=r"^second \(TandemConv2D\) is fed by 'bn' \(BatchNormalization\): "
                                         r".*batch_norm=True") as error:
        tk.TandemConv2D(4, 3, name="second")(h)
    _one_line(error)
    # after the counts (an analog readout) it is plain Keras
    out = L.Dense(2)(L.BatchNormalization()(L.Flatten()(tk.SpikeCount()(s))))
    model = keras.Model(inp, out)
    assert model.predict(np.ones((2, 6, 6, 2), "float32"), verbose=0).shape == (2, 2)


@pytest.mark.parametrize("between", ["max_pooling", "zero_padding", "time_distributed_max"])
def test_keras_add_of_spike_trains_refused_when_built_through_any_layer(between):
    inp, s = _front()
    a = tk.TandemConv2D(2, 3, name="a")(s)
    b = tk.TandemConv2D(2, 3, name="b")(s)
    summed = L.Add(name="plain_add")([a, b])
    with pytest.raises(ValueError, match=r"fed by 'plain_add' \(Add\): a add of spike trains is not a "
                                         r"spike train; .*tk.TandemAdd") as error:
        if between == "max_pooling":       # refused by the max pooling itself (it takes spikes)
            x = tk.MaxPooling2D(2, name="pool")(summed)
        elif between == "zero_padding":
            x = L.TimeDistributed(L.ZeroPadding2D(1))(summed)
        else:
            x = L.TimeDistributed(L.MaxPooling2D(2))(summed)
        tk.TandemConv2D(2, 3, name="next")(x)
    _one_line(error)


def test_max_pooling_of_a_current_refused_when_built():
    inp, s = _front()
    current = tk.TandemConv2D(2, 3, neuron=None, name="synapses")(s)
    with pytest.raises(ValueError, match=r"pool \(MaxPooling2D\) takes spike trains and is fed a current"):
        tk.MaxPooling2D(2, name="pool")(current)


def test_current_encoding_needs_analog_input_when_built():
    inp = keras.Input((5,))
    current = tk.SpikeEncoder(4, encoding="current", name="enc")(inp)
    with pytest.raises(ValueError, match=r"fc \(TandemDense\) is fed by 'enc' \(SpikeEncoder\): "
                                         r"encoding='current' .*analog_input=True"):
        tk.TandemDense(3, name="fc")(current)
    model = keras.Model(inp, tk.SpikeCount()(tk.TandemDense(3, analog_input=True)(current)))
    assert model.predict(np.ones((2, 5), "float32"), verbose=0).shape == (2, 3)


def _fit_predict(model, x):
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(len(x)) % 2, batch_size=8, epochs=1, verbose=0)
    return model


def test_pooled_currents_joined_by_concatenate_are_accepted():
    """Two global-average-pooled branches (exact currents, method §3.4) joined by a Keras
    Concatenate into a TandemDense: trains, predicts in graph mode, spike for spike."""
    keras.utils.set_random_seed(1)
    inp, s = _front()
    a = tk.GlobalAveragePooling2D(name="gap_a")(tk.TandemConv2D(3, 3, name="a")(s))
    b = tk.GlobalAveragePooling2D(name="gap_b")(s)
    joined = L.Concatenate(name="joined")([a, b])
    h = tk.TandemDense(5, name="dense")(joined)
    model = keras.Model(inp, L.Dense(2)(tk.SpikeCount()(h)))
    x = np.random.default_rng(0).uniform(0, 3, (32, 6, 6, 2)).astype("float32")
    _fit_predict(model, x)
    layer = model.get_layer("dense")
    layer.beta.assign(np.random.default_rng(5).uniform(1.0, 3.0, 5).astype("float32"))
    probe = keras.Model(inp, [model.get_layer(n).output for n in ("a", "encoder", "dense")])
    a_s, enc, out = (np.asarray(v) for v in probe.predict(x, verbose=0))
    current = np.concatenate([global_avg_np(a_s), global_avg_np(enc)], axis=-1)
    kernel, bias = layer.folded_weights()
    z = current @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64) / 4
    expected, margin = neuron_np(z, layer.threshold)
    assert_spikes_match(out, expected, margin)
    assert 0.05 < expected.mean() < 0.95


def test_pooled_current_through_time_distributed_flatten_is_accepted():
    keras.utils.set_random_seed(2)
    inp, s = _front()
    pooled = tk.AveragePooling2D(2, name="pool")(s)
    flat = L.TimeDistributed(L.Flatten(), name="flatten")(pooled)
    h = tk.TandemDense(4, name="dense")(flat)
    model = keras.Model(inp, L.Dense(2)(tk.SpikeCount()(h)))
    x = np.random.default_rng(1).uniform(0, 3, (32, 6, 6, 2)).astype("float32")
    _fit_predict(model, x)
    layer = model.get_layer("dense")
    layer.beta.assign(layer.beta + 0.5)
    probe = keras.Model(inp, [model.get_layer(n).output for n in ("encoder", "dense")])
    enc, out = (np.asarray(v) for v in probe.predict(x, verbose=0))
    current = avg_pool_np(enc, (2, 2)).reshape(32, 4, -1)
    kernel, bias = layer.folded_weights()
    z = current @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64) / 4
    expected, margin = neuron_np(z, layer.threshold)
    assert_spikes_match(out, expected, margin)


def test_depthwise_layer_exports_to_nir_exactly(tmp_path):
    """NIR's Conv2d with groups = the input channels: the depthwise layer's spikes, exactly."""
    pytest.importorskip("nir")
    from tests.tandem_keras.test_nir import _check_exact, _fit_briefly

    keras.utils.set_random_seed(4)
    inp, s = _front((8, 8, 3))
    h = tk.TandemDepthwiseConv2D(3, depth_multiplier=2, strides=2, name="depthwise")(s)
    h = tk.TandemSeparableConv2D(6, 3, name="separable")(h)
    h = tk.TandemDense(10, name="dense")(tk.TimeFlatten()(h))
    model = keras.Model(inp, L.Dense(3, name="logits")(tk.SpikeCount()(h)))
    x = np.random.default_rng(3).uniform(0, 3, (64, 8, 8, 3)).astype("float32")
    _fit_briefly(model, x, np.arange(64) % 3, liven=True)
    graph = tk.export_nir(model)
    depthwise = graph.nodes["depthwise"]
    # 4 encoder channels, 2 kernels each: 8 output channels, each reading one input channel
    assert type(depthwise).__name__ == "Conv2d" and depthwise.groups == 4 and depthwise.weight.shape[:2] == (8, 1)
    assert graph.nodes["separable_depthwise"].groups == 8
    assert ("separable_depthwise", "separable") in graph.edges
    assert "type_check=False" in graph.metadata["type_check"]   # NIR 1.0 miscounts groups
    _check_exact(model, x[:48], tmp_path, "membrane", type_check=False)
