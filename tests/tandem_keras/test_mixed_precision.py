"""Half-precision dtype policies on the user's path: ``fit``, ``predict`` and the exports in
graph mode under ``mixed_float16`` and ``float16`` (the layers' eager checks are in
test_layers.py).

The reference is the same network under ``float32`` with the same weights: with dyadic kernels
and inputs every product is exact in float16, so the SNN differs from the float32 one only if
a membrane potential, a BN statistic or a count is kept in 16 bits (the BN scale and bias are
not dyadic). The first tandem layer is also checked against the float64 NumPy reference.
"""
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tests._train_helpers import check_export, python_m_train
from tests.tandem_keras.test_neurons_reference import (NEAR_THRESHOLD_TOL, encode_np,
                                                       tandem_layer_np)

T = 4
SPIKING = ("encoder", "conv1", "add", "pool_max")


@pytest.fixture(params=["mixed_float16", "float16"])
def policy(request):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy(previous)


def _network():
    """Encoder, a BN tandem conv, a residual TandemAdd of two synapse-only convs, max and
    average pooling, a dense readout on pooled currents; float32 logits (the Keras way)."""
    inputs = keras.Input((8, 8, 2))
    s = tk.SpikeEncoder(T, name="encoder")(inputs)
    s = tk.TandemConv2D(4, 3, name="conv1")(s)
    a = tk.TandemConv2D(4, 3, neuron=None, batch_norm=False, name="branch_a")(s)
    b = tk.TandemConv2D(4, 1, neuron=None, batch_norm=False, name="branch_b")(s)
    s = tk.TandemAdd(name="add")([a, b])
    s = tk.MaxPooling2D(2, name="pool_max")(s)
    c = tk.AveragePooling2D(2, name="pool_avg")(s)
    c = tk.TimeFlatten(name="flatten")(c)
    c = tk.TandemDense(5, neuron=None, name="readout")(c)
    logits = tk.SpikeCount(dtype="float32", name="logits")(c)
    return keras.Model(inputs, logits)


def _dyadic(rng, shape, step=1 / 16, high=0.5):
    return rng.integers(int(-high / step), int(high / step) + 1, shape) * step


def _data(rng, n=32):
    x = rng.integers(0, 40, (n, 8, 8, 2)) / 8.0          # 0 .. 4.875 in steps of 1/8: exact in float16
    return x.astype(np.float32), rng.integers(0, 5, n)


def _make_dyadic(model, rng):
    """Dyadic kernels and biases; BN parameters and statistics left as trained (not dyadic)."""
    for layer in model.layers:
        if isinstance(layer, tk.TandemLayer):
            layer.kernel.assign(_dyadic(rng, layer.kernel.shape))
            if layer.use_bias:
                layer.bias.assign(_dyadic(rng, layer.bias.shape, 1 / 64, 0.25))


def _probe(model):
    return keras.Model(model.inputs, [model.get_layer(n).output for n in SPIKING] + [model.output])


def test_fit_predict_and_exports_equal_the_float32_network(policy, tmp_path):
    rng = np.random.default_rng(29)
    x, y = _data(rng)
    keras.utils.set_random_seed(1)
    model = _network()
    assert model.get_layer("conv1").compute_dtype == "float16"
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [np.array(w) for w in model.get_weights()]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)        # graph mode
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(before, model.get_weights()))
    conv1 = model.get_layer("conv1")
    assert conv1.moving_variance.dtype == ("float16" if policy == "float16" else "float32")
    assert not np.allclose(np.asarray(conv1.moving_mean, np.float32), 0.0)  # updated by fit
    _make_dyadic(model, rng)

    keras.mixed_precision.set_global_policy("float32")
    reference = _network()
    keras.mixed_precision.set_global_policy(policy)
    reference.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])

    outputs = _probe(model).predict(x, batch_size=16, verbose=0)     # graph mode
    expected = _probe(reference).predict(x, batch_size=16, verbose=0)
    for name, got, want in zip(SPIKING, outputs[:-1], expected[:-1]):
        assert got.dtype == np.float16, name
        assert set(np.unique(got)) <= {0.0, 1.0}, name
        assert 0.0 < got.mean() < 1.0, name
        np.testing.assert_array_equal(got.astype(np.float32), want, err_msg=name)
        counts = got.astype(np.float32).sum(axis=1)
        np.testing.assert_array_equal(counts, np.round(counts))
    np.testing.assert_allclose(outputs[-1], expected[-1], rtol=1e-6, atol=1e-6)
    assert outputs[-1].dtype == np.float32

    # The first tandem layer against the float64 NumPy reference (BN from moving statistics).
    get = lambda w: np.asarray(w, np.float32).astype(np.float64)  # noqa: E731
    bn = dict(gamma=get(conv1.gamma), beta=get(conv1.beta), moving_mean=get(conv1.moving_mean),
              moving_variance=get(conv1.moving_variance), eps=conv1.epsilon)
    spikes_in = encode_np(x, T)
    np.testing.assert_array_equal(outputs[0], spikes_in)
    want, margin = tandem_layer_np(spikes_in, get(conv1.kernel), get(conv1.bias),
                                   {"kind": "conv", "strides": 1, "padding": "same"}, 1.0, bn)
    clear = np.broadcast_to((margin > NEAR_THRESHOLD_TOL)[:, None], want.shape)
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(outputs[1][clear], want[clear])

    logits = model.predict(x, verbose=0)
    tk.export_model(model, str(tmp_path / "tk_export"))
    loaded = tf.saved_model.load(str(tmp_path / "tk_export"))
    np.testing.assert_allclose(np.asarray(loaded.serve(x)), logits, rtol=1e-6, atol=1e-6)
    if policy == "mixed_float16":   # Keras's own export (the same ExportArchive underneath)
        model.export(str(tmp_path / "keras_export"), verbose=False)
        loaded = tf.saved_model.load(str(tmp_path / "keras_export"))
        np.testing.assert_allclose(np.asarray(loaded.serve(x)), logits, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["quantized", "bptt", "ann"])
def test_other_modes_fit_and_predict_in_graph_mode(mode):
    """quantized / bptt / ann under the policy: fit and predict compile, and the quantized
    mode's spikes stay 0/1 with integer counts."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        _fit_and_predict(mode)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _fit_and_predict(mode):
    rng = np.random.default_rng(3)
    x, y = _data(rng, 16)
    model = tk.with_mode(_network(), mode)
    model.compile(keras.optimizers.SGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    outputs = _probe(model).predict(x, verbose=0)
    assert np.all(np.isfinite(outputs[-1]))
    if mode != "ann":
        for name, got in zip(SPIKING, outputs[:-1]):
            assert set(np.unique(got)) <= {0.0, 1.0}, name


@pytest.mark.slow
def test_train_program_under_mixed_float16(tmp_path):
    """``python -m train --mixed_precision=mixed_float16`` trains digits, exports, and the
    export evaluates as the Keras model it saved."""
    model_dir = tmp_path / "run"
    proc = python_m_train("--model=digits", "--dataset=digits", "--epochs=2", "--batch_size=256",
                          "--time_steps=3", "--mixed_precision=mixed_float16", f"--model_dir={model_dir}",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    summaries = [line for line in err.splitlines() if "] epoch " in line]
    assert len(summaries) == 2 and "loss=nan" not in summaries[-1]
    images = np.random.default_rng(0).uniform(0, 255, (5, 8, 8, 1)).astype("float32")
    keras_model, activity = check_export(os.path.join(model_dir, "export"), images)
    assert keras_model.get_layer("tandem_conv1").compute_dtype == "float16"
