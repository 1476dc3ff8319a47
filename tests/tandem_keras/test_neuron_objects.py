"""Neurons as serializable objects (`tk.neurons`): aliases, the IF default bit for bit, LIF and
the initial potential against the float64 NumPy neurons of test_neurons_reference, in the SNN
forward, the quantized ANN, the encoder and the tandem coupling's gradient."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tandem_keras import neurons
from tests.tandem_keras.test_gradients import ann_gradients, assert_close, assert_params_close, tandem_gradients
from tests.tandem_keras.test_neurons_reference import (
    assert_spikes_match,
    encode_np,
    free_potential_np,
    neuron_layer_np,
    neuron_np,
    quantized_np,
    set_layer_weights,
    synaptic_current_np,
    tandem_add_np,
    tandem_layer_np,
)

DENSE = {"kind": "dense"}
CONV = {"kind": "conv", "strides": 2, "padding": "same"}


# ----------------------------------------------------------------------------- objects
def test_aliases_get_serialize_and_bad_identifiers():
    assert neurons.get("if") == neurons.IF() and neurons.get("lif") == neurons.LIF()
    assert neurons.get(neurons.LIF(0.5)) == neurons.LIF(beta=0.5)
    assert neurons.serialize(neurons.IF()) == "if" and neurons.serialize(neurons.LIF()) == "lif"
    assert neurons.serialize(None) is None
    custom = neurons.LIF(beta=0.75, initial_potential=0.5)
    config = neurons.serialize(custom)
    assert isinstance(config, dict) and neurons.get(config) == custom
    assert neurons.get(neurons.serialize(neurons.IF(0.5))).initial_potential == 0.5
    with pytest.raises(ValueError, match=r"TandemDense: unknown neuron 'relu'; expected one of 'if', 'lif'"):
        tk.TandemDense(3, neuron="relu")
    with pytest.raises(ValueError, match="neuron must be one of"):
        neurons.get(3)
    with pytest.raises(ValueError, match=r"LIF: beta \(the leak per step\) must be a number in \(0, 1\]"):
        neurons.LIF(beta=1.5)
    for bad in (1.0, -0.1, float("nan"), True):
        with pytest.raises(ValueError, match=r"initial_potential \(a fraction of the threshold"):
            neurons.IF(initial_potential=bad)
    with pytest.raises(ValueError, match="front-loaded spike code is defined for IF neurons"):
        tk.SpikeEncoder(4, neuron="lif")


def test_layer_configs_carry_the_neuron():
    assert tk.TandemConv2D(3, 3).get_config()["neuron"] == "if"
    layer = tk.TandemDense(3, neuron=neurons.LIF(0.8, initial_potential=0.25))
    clone = tk.TandemDense.from_config(layer.get_config())
    assert clone.neuron == neurons.LIF(0.8, 0.25)
    assert tk.TandemDense.from_config(tk.TandemDense(3, neuron=None).get_config()).neuron is None
    assert tk.SpikeEncoder.from_config(tk.SpikeEncoder(3, neuron=neurons.IF(0.5)).get_config()).neuron == neurons.IF(0.5)


# ----------------------------------------------------------------------------- forward
def _dyadic_case(op, time_steps, seed, **layer_kwargs):
    """Weights k/4 and per-step biases k/8: every potential is exact in float32 (beta 0.5)."""
    rng = np.random.default_rng(seed)
    if op["kind"] == "dense":
        x = (rng.random((6, time_steps, 10)) < 0.5).astype(np.float32)
        kernel = rng.integers(-2, 4, (10, 5)) / 4.0
        layer = tk.TandemDense(5, batch_norm=False, **layer_kwargs)
    else:
        x = (rng.random((4, time_steps, 6, 6, 2)) < 0.5).astype(np.float32)
        kernel = rng.integers(-2, 4, (3, 3, 2, 5)) / 4.0
        layer = tk.TandemConv2D(5, 3, strides=op["strides"], padding=op["padding"], batch_norm=False,
                                **layer_kwargs)
    bias = rng.integers(-2, 5, 5) * time_steps / 8.0
    layer(x)
    set_layer_weights(layer, kernel=kernel, bias=bias)
    return layer, x, kernel, bias


@pytest.mark.parametrize("neuron", ["if", neurons.IF(), neurons.IF(initial_potential=0.0)])
@pytest.mark.parametrize("op", [DENSE, CONV], ids=["dense", "conv"])
def test_if_default_is_bit_identical_to_the_numpy_if(op, neuron):
    """The IF reference of method §3 (V(0) = 0), exact ties with the threshold included."""
    for time_steps in (1, 4, 16):
        layer, x, kernel, bias = _dyadic_case(op, time_steps, time_steps, neuron=neuron)
        expected, margin = tandem_layer_np(x, kernel, bias, op, 1.0)
        assert (margin == 0).any() or time_steps == 1
        np.testing.assert_array_equal(np.asarray(layer(x)), expected)
        default, _, _, _ = _dyadic_case(op, time_steps, time_steps)
        np.testing.assert_array_equal(np.asarray(default(x)), np.asarray(layer(x)))


@pytest.mark.parametrize("beta, v0", [(0.5, 0.0), (0.5, 0.5), (1.0, 0.25), (1.0, 0.5), (0.75, 0.25)])
@pytest.mark.parametrize("op", [DENSE, CONV], ids=["dense", "conv"])
def test_lif_and_initial_potential_exact_against_numpy(op, beta, v0):
    """Dyadic weights, beta in {1/2, 3/4, 1} and v0 in quarters: float32 is exact, so the
    spikes equal the float64 reference bit for bit, ties with theta included."""
    neuron = neurons.LIF(beta, v0) if beta != 1.0 else neurons.IF(v0)
    for time_steps in (1, 3, 8):
        layer, x, kernel, bias = _dyadic_case(op, time_steps, 7 * time_steps, neuron=neuron)
        expected, _ = neuron_layer_np(x, kernel, bias, op, 1.0, beta=beta, v0=v0)
        np.testing.assert_array_equal(np.asarray(layer(x)), expected)
        assert 0 < expected.mean() < 1


@pytest.mark.parametrize("beta, v0, rounding", [(1.0, 0.25, 0.5), (1.0, 0.0, 0.5), (0.5, 0.25, 0.75)])
@pytest.mark.parametrize("op", [DENSE, CONV], ids=["dense", "conv"])
def test_rounding_is_a_constant_current_exact_against_numpy(op, beta, v0, rounding):
    """``rounding`` r > v0: V(0) = v0 theta and the current (r - v0) theta / T added at every
    step (dyadic: exact), in a tandem layer, compiled, and in a TandemAdd."""
    neuron = (neurons.LIF(beta, v0, rounding) if beta != 1.0 else neurons.IF(v0, rounding=rounding))
    for time_steps in (1, 4, 8):
        layer, x, kernel, bias = _dyadic_case(op, time_steps, 5 * time_steps, neuron=neuron)
        z = synaptic_current_np(x, kernel, bias, op) + (rounding - v0) / time_steps
        expected, _ = neuron_np(z, 1.0, beta, v0)
        np.testing.assert_array_equal(np.asarray(layer(x)), expected)
        np.testing.assert_array_equal(np.asarray(tf.function(layer)(tf.constant(x))), expected)
        assert 0 < expected.mean() < 1
        trains = [np.asarray(x, np.float32), np.asarray(x[:, :, ::-1] if op is DENSE else x, np.float32)]
        merge = tk.TandemAdd(neuron=neuron, threshold=2.0, scales=[0.5, 0.25])
        added, _ = tandem_add_np([trains[0] + 4 * (rounding - v0) / time_steps, trains[1]], 2.0,
                                 [0.5, 0.25], beta, v0)
        np.testing.assert_array_equal(np.asarray(merge(trains)), added)


def test_rounding_config_and_refusals():
    split = neurons.IF(initial_potential=0.25, rounding=0.5)
    assert split.get_config() == {"initial_potential": 0.25, "rounding": 0.5}
    assert neurons.IF(0.5).rounding == 0.5 and neurons.IF(0.5).get_config() == {"initial_potential": 0.5}
    assert neurons.get(neurons.serialize(split)) == split
    clone = tk.TandemDense.from_config(tk.TandemDense(3, neuron=split).get_config())
    assert clone.neuron == split and clone.neuron != neurons.IF(0.25)
    with pytest.raises(ValueError, match=r"IF: rounding \(0.25\) must be at least initial_potential \(0.5\)"):
        neurons.IF(0.5, rounding=0.25)
    with pytest.raises(ValueError, match=r"IF: rounding \(a fraction of the threshold, the count is floor"):
        neurons.IF(0.0, rounding=1.0)


@pytest.mark.parametrize("training", [False, True])
def test_lif_with_bn_and_compiled_graph_against_numpy(training):
    from tests.tandem_keras.test_neurons_reference import bn_weights, random_bn

    rng = np.random.default_rng(3)
    x = (rng.random((5, 6, 7, 7, 3)) < 0.4).astype(np.float32)
    layer = tk.TandemConv2D(4, 3, neuron=neurons.LIF(0.9, initial_potential=0.5), threshold=0.8)
    layer(x)
    kernel = rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0.2, 1.0, 4).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 4, scale=2.0)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    out = tf.function(lambda s: layer(s, training=training))(tf.constant(x))
    expected, margin = neuron_layer_np(x, kernel, bias, {"kind": "conv", "strides": 1, "padding": "same"},
                                       0.8, bn, training, beta=0.9, v0=0.5)
    assert_spikes_match(np.asarray(out), expected, margin)
    assert 0.05 < expected.mean() < 0.95


def test_lif_leaks_after_the_reset_hand_computed():
    """beta = 0.5, theta = 1, z = 1.5, 0, 0.8: V(1) = 1.5 spikes, the 0.5 left leaks to 0.25,
    then 0.125 + 0.8 = 0.925 stays below theta (a leak before the reset would give 1.175)."""
    z = tf.constant([[[1.5], [0.0], [0.8]]])
    spikes = neurons.LIF(0.5).fire(lambda t: z[:, t], 3, 1.0, tf.float32)
    assert spikes[0, :, 0].numpy().tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("v0, rounding", [(0.0, None), (0.5, None), (0.25, 0.5)])
def test_quantized_mode_is_shifted_floor(v0, rounding):
    from tests.tandem_keras.test_neurons_reference import bn_weights, random_bn

    rng = np.random.default_rng(4)
    x = (rng.random((8, 4, 9)) < 0.5).astype(np.float32)
    layer = tk.TandemDense(6, mode="quantized", threshold=0.5, neuron=neurons.IF(v0, rounding=rounding))
    layer(x)
    kernel = rng.normal(0, 0.5, (9, 6)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0.5, 1.0, 6).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 6, scale=2.0)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    v0 = v0 if rounding is None else rounding   # the count is floor(V_f / theta + r)
    expected, vf = quantized_np(x, kernel, bias, DENSE, 0.5, bn, training=False, v0=v0)
    distance = np.abs(vf / 0.5 + v0 - np.round(vf / 0.5 + v0))
    keep = np.broadcast_to((distance > 1e-4)[:, None], expected.shape)
    out = np.asarray(layer(x))
    np.testing.assert_array_equal(out[keep], expected[keep])
    assert keep.mean() > 0.95 and 0 < expected.mean() < 1


@pytest.mark.parametrize("v0", [0.0, 0.5])
def test_encoder_initial_potential_rounds(v0):
    v = np.array([[-1.0, 0.0, 0.49, 0.5, 0.99, 1.5, 2.4, 7.0]], np.float32)
    enc = tk.SpikeEncoder(4, threshold=1.0, neuron=neurons.IF(v0))
    np.testing.assert_array_equal(np.asarray(enc(v)), encode_np(v, 4, 1.0, v0))
    counts = np.asarray(enc(v)).sum(axis=1)[0]
    assert counts.tolist() == ([0, 0, 0, 0, 0, 1, 2, 4] if v0 == 0 else [0, 0, 0, 1, 1, 2, 2, 4])
    v_t = tf.constant(v)
    with tf.GradientTape() as tape:
        tape.watch(v_t)
        loss = tf.reduce_sum(enc(v_t, training=True))
    # d a0/dv = 1/theta on 0 < v + v0 theta < T theta; rate read: sum_t 1/T per step -> 1.
    inside = (v + v0 > 0) & (v + v0 < 4)
    np.testing.assert_allclose(np.asarray(tape.gradient(loss, v_t)), inside.astype(np.float32))


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("surrogate", ["bounded_relu", "relu"])
@pytest.mark.parametrize("neuron", [neurons.IF(0.5), neurons.LIF(0.8), neurons.LIF(0.9, 0.25)])
@pytest.mark.parametrize("mode", ["tandem", "quantized"])
def test_gradient_is_the_shifted_coupled_ann(neuron, surrogate, mode):
    """a = clip(V_f / theta + v0, 0, T) (method §3); LIF's coupled ANN is the IF's."""
    from tests.tandem_keras.test_neurons_reference import bn_weights, random_bn

    rng = np.random.default_rng(5)
    t_steps, theta = 4, 0.8
    x = (rng.random((40, t_steps, 12)) < 0.5).astype(np.float32)
    layer = tk.TandemDense(6, threshold=theta, neuron=neuron, surrogate=surrogate, mode=mode,
                           epsilon=1e-3)
    layer(x)
    kernel = rng.normal(0, 0.4, (12, 6)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0.5, 1.0, 6).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 6, scale=2.0, eps=1e-3)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    r = rng.normal(size=(40, t_steps, 6)).astype(np.float32)
    v0 = neuron.initial_potential
    vf = free_potential_np(x, kernel, bias, DENSE, bn, True)
    assert np.abs(vf + v0 * theta).min() > 1e-4 and np.abs(vf + v0 * theta - t_steps * theta).min() > 1e-4
    expected = ann_gradients(DENSE, x, kernel, bias, bn, theta, r, True, surrogate, offset=v0)
    got, g_x = tandem_gradients(layer, x, r, True)
    assert_params_close(got, expected)
    assert_close(g_x, np.broadcast_to(expected["c_in"][:, None], x.shape), "input")
    # the shift matters where -v0 theta < V_f < 0: there the unshifted ANN has no gradient
    band = (vf > -v0 * theta) & (vf < 0)
    assert band.any() == (v0 > 0)
    unshifted = ann_gradients(DENSE, x, kernel, bias, bn, theta, r, True, surrogate, offset=0.0)
    assert np.allclose(unshifted["kernel"], expected["kernel"]) == (v0 == 0)


def test_bptt_lif_forward_is_the_snn_and_trains():
    rng = np.random.default_rng(6)
    x = (rng.random((4, 5, 6)) < 0.5).astype(np.float32)
    neuron = neurons.LIF(0.5, 0.5)
    bptt = tk.TandemDense(5, mode="bptt", batch_norm=False, neuron=neuron)
    exact = tk.TandemDense(5, batch_norm=False, neuron=neuron)
    bptt(x), exact(x)
    kernel = rng.integers(-2, 4, (6, 5)) / 4.0
    set_layer_weights(bptt, kernel=kernel, bias=np.full(5, 0.25))
    exact.set_weights(bptt.get_weights())
    np.testing.assert_array_equal(np.asarray(bptt(x)), np.asarray(exact(x)))
    got, g_x = tandem_gradients(bptt, x, rng.normal(size=(4, 5, 5)).astype(np.float32), True)
    assert all(np.isfinite(g).all() and np.abs(g).max() > 0 for g in got.values())


def test_ann_mode_ignores_the_neuron():
    """mode="ann" is the plain ReLU ANN of the same architecture, whatever the neuron."""
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 2, (4, 1, 6)).astype(np.float32)
    plain, lif = tk.TandemDense(3, mode="ann"), tk.TandemDense(3, mode="ann", neuron=neurons.LIF(0.5, 0.5))
    plain(x), lif(x)
    lif.set_weights(plain.get_weights())
    np.testing.assert_array_equal(np.asarray(plain(x)), np.asarray(lif(x)))


def test_keras_file_and_with_mode_keep_the_neurons(tmp_path):
    model = keras.Sequential([
        keras.Input((6, 6, 2)), tk.SpikeEncoder(4, neuron=neurons.IF(0.5)),
        tk.TandemConv2D(3, 3, neuron=neurons.LIF(0.75, 0.25), name="conv"),
        tk.TimeFlatten(), tk.TandemDense(4, neuron="lif", name="fc"), tk.SpikeCount()])
    x = np.random.default_rng(9).uniform(0, 3, (3, 6, 6, 2)).astype(np.float32)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_layer("conv").neuron == neurons.LIF(0.75, 0.25)
    for mode in tk.MODES:
        copy = tk.with_mode(model, mode)
        assert copy.get_layer("conv").neuron == neurons.LIF(0.75, 0.25) and copy.get_layer("conv").mode == mode
    np.testing.assert_array_equal(tk.with_mode(tk.with_mode(model, "ann"), "tandem").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_mixed_bfloat16_spikes_and_counts_exact():
    rng = np.random.default_rng(10)
    x = (rng.random((4, 6, 10)) < 0.5).astype(np.float32)
    layer = tk.TandemDense(8, neuron=neurons.LIF(0.9, 0.5), dtype="mixed_bfloat16")
    out = layer(x)
    assert out.dtype == tf.bfloat16
    values = tf.cast(out, tf.float32).numpy()
    assert set(np.unique(values)) <= {0.0, 1.0}
    counts = tf.cast(tf.reduce_sum(out, axis=1), tf.float32).numpy()
    np.testing.assert_array_equal(counts, values.sum(axis=1))
