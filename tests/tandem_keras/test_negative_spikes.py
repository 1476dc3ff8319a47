"""Neurons with negative spikes (``negative_spikes=True``, method §3.6): the forward against a
NumPy neuron, the count against the quantized ANN it restores, BPTT's surrogate against a
hand-derived gradient, the coupled ANN's gradient unchanged, SynOps counting every spike,
max pooling and NIR refused, round trips and a converted residual network."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

import tandem_keras as tk
from tandem_keras import neurons
from tests.tandem_keras.test_neurons_reference import synaptic_current_np

CONV = {"kind": "conv", "strides": 1, "padding": "same"}


def signed_neuron_np(z, theta=1.0, beta=1.0, v0=0.0, rounding=None):
    """IF/LIF with reset by subtraction and negative spikes (float64, [N, T, ...]).

    V(t) = beta (V(t-1) - theta s(t-1)) + z(t) + (r - v0) theta / T, V(0) = v0 theta;
    s(t) = 1 if V(t) >= theta, -1 if V(t) < 0 and sum_{u<t} s(u) > 0, else 0.
    """
    z = np.asarray(z, np.float64)
    time_steps = z.shape[1]
    rounding = v0 if rounding is None else rounding
    extra = (rounding - v0) * theta / time_steps
    v = np.full(z.shape[:1] + z.shape[2:], v0 * theta)
    s_prev = np.zeros_like(v)
    count = np.zeros_like(v)
    out = np.zeros_like(z)
    for t in range(time_steps):
        v = beta * (v - theta * s_prev) + z[:, t] + extra
        s_prev = np.where(v >= theta, 1.0, np.where((v < 0) & (count > 0), -1.0, 0.0))
        count += s_prev
        out[:, t] = s_prev
    return out


def eighths(shape, low=-6, high=10, seed=0):
    """Currents in eighths: every potential exact in float32."""
    return (np.random.default_rng(seed).integers(low, high, shape) / 8.0).astype(np.float32)


def spikes(shape, rate=0.5, seed=0):
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)


# ----------------------------------------------------------------------------- the neuron
@pytest.mark.parametrize("neuron, beta, v0, r", [
    (neurons.IF(negative_spikes=True), 1.0, 0.0, 0.0),
    (neurons.IF(0.25, rounding=0.5, negative_spikes=True), 1.0, 0.25, 0.5),
    (neurons.LIF(0.5, 0.5, negative_spikes=True), 0.5, 0.5, 0.5)])
def test_fire_exact_against_numpy(neuron, beta, v0, r):
    z = eighths((64, 4, 7), seed=1)
    out = neuron.fire(lambda t: tf.constant(z[:, t]), 4, 1.0, tf.float32).numpy()
    expected = signed_neuron_np(z, 1.0, beta, v0, r)
    np.testing.assert_array_equal(out, expected)
    assert (expected == -1).mean() > 0.02 and (expected == 1).mean() > 0.1
    np.testing.assert_array_equal(neuron.fire_bptt(tf.constant(z), 1.0).numpy(), expected)


def test_count_is_the_quantized_count_when_the_input_is_early():
    """A neuron that fired on an early surplus takes it back: with every positive current
    before the negative ones (no late deficit) the count is the quantized ANN's,
    clip(floor(sum z / theta + r), 0, T); the plain IF neuron keeps the early spikes."""
    rng = np.random.default_rng(2)
    positive = rng.integers(0, 9, (500, 2)) / 8.0
    negative = -rng.integers(0, 9, (500, 2)) / 8.0
    z = np.concatenate([positive, negative], axis=1)[..., None].astype(np.float32)
    total = z.sum(axis=1)[:, 0]
    expected = np.clip(np.floor(total / 1.0 + 0.5), 0, 4)
    signed = neurons.IF(0.5, negative_spikes=True).fire(lambda t: tf.constant(z[:, t]), 4, 1.0, tf.float32)
    plain = neurons.IF(0.5).fire(lambda t: tf.constant(z[:, t]), 4, 1.0, tf.float32)
    np.testing.assert_array_equal(signed.numpy().sum(axis=1)[:, 0], expected)
    assert (plain.numpy().sum(axis=1)[:, 0] > expected).mean() > 0.2


def test_bptt_gradient_by_hand():
    """T = 2, theta = 1: z = (1.2, -0.5). V(1) = 1.2 fires (boxcar slope 1 at 0.2); V(2) =
    -0.3 < 0 with a count of 1: a negative spike (slope 1 in -V at 0.3). sum s = 0 and
    d sum/d z2 = 1; d sum/d z1 = 1 + dV(2)/dz1 = 1 + (1 - 1) = 1."""
    z = tf.Variable([[[1.2], [-0.5]]])
    with tf.GradientTape() as tape:
        s = neurons.IF(negative_spikes=True).fire_bptt(z, 1.0)
        total = tf.reduce_sum(s)
    np.testing.assert_array_equal(s.numpy().ravel(), [1.0, -1.0])
    np.testing.assert_allclose(tape.gradient(total, z).numpy().ravel(), [1.0, 1.0])


def test_config_and_validation():
    n = neurons.IF(0.25, rounding=0.5, negative_spikes=True)
    assert neurons.get(neurons.serialize(n)) == n != neurons.IF(0.25, rounding=0.5)
    assert neurons.serialize(neurons.IF()) == "if"
    with pytest.raises(ValueError, match="negative_spikes must be True or False"):
        neurons.IF(negative_spikes=1)


# ----------------------------------------------------------------------------- layers
def test_tandem_layer_forward_exact_and_gradient_is_the_coupled_anns():
    rng = np.random.default_rng(3)
    x = spikes((6, 4, 5, 5, 3), seed=3)
    kernel = (rng.integers(-4, 5, (3, 3, 3, 4)) / 8.0).astype(np.float32)
    bias = (rng.integers(-2, 4, 4) / 8.0).astype(np.float32)
    layers = {}
    for signed in (True, False):
        layer = tk.TandemConv2D(4, 3, batch_norm=False, neuron=neurons.IF(0.5, negative_spikes=signed))
        layer.build((None, 4, 5, 5, 3))
        layer.set_weights([kernel, bias])
        layers[signed] = layer
    z = synaptic_current_np(x, kernel.astype(np.float64), bias.astype(np.float64), CONV)
    np.testing.assert_array_equal(np.asarray(layers[True](x)), signed_neuron_np(z, 1.0, 1.0, 0.5))
    grads = {}
    for signed, layer in layers.items():
        with tf.GradientTape() as tape:
            out = layer(tf.constant(x), training=True)
            loss = tf.reduce_sum(tf.reduce_sum(out, axis=1) * np.arange(4, dtype=np.float32))
        grads[signed] = [g.numpy() for g in tape.gradient(loss, layer.trainable_weights)]
    # The coupled ANN (bounded ReLU of V_f) does not depend on how the counts were made.
    for a, b in zip(grads[True], grads[False]):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert any(np.abs(g).sum() > 0 for g in grads[True])


def test_tandem_add_forward_exact():
    z = eighths((8, 4, 3, 3, 2), -8, 8, seed=4)
    identity = spikes((8, 4, 3, 3, 2), seed=5)
    add = tk.TandemAdd(neuron=neurons.IF(negative_spikes=True), scales=[1.0, 0.5])
    out = np.asarray(add([z, identity]))
    np.testing.assert_array_equal(out, signed_neuron_np(z + 0.5 * identity))
    assert (out == -1).any()


def test_synops_count_every_spike_and_analysis_the_net_count():
    """SynOps: each spike, +1 or -1, reaches the fan-out: encoder 2 + 4 spikes to 2 neurons,
    then sum_j |s_j| to the readout's 3."""
    m = keras.Sequential([keras.Input((2,)), tk.SpikeEncoder(4),
                          tk.TandemDense(2, batch_norm=False, use_bias=False,
                                         neuron=neurons.IF(negative_spikes=True)),
                          tk.SpikeCount(), keras.layers.Dense(3)])
    dense = m.layers[1]
    dense.set_weights([np.array([[1.5, 0.5], [-0.5, 0.5]], np.float32)])
    x = np.array([[2.0, 4.0]], np.float32)      # spikes at steps 1-2 and 1-4
    trains = np.asarray(tk.synops.activity_model(m, spike_trains=True)(x)[dense.name])
    np.testing.assert_array_equal(trains[0], [[1, 1], [1, 1], [-1, 0], [0, 1]])
    assert tk.count_synops(m, x)["synops_snn"] == 6 * 2 + 6 * 3
    net = tk.synops.activity_model(m, net=True)(x)[dense.name]
    np.testing.assert_array_equal(np.asarray(net)[0], [1.0, 3.0])


def test_max_pooling_relu_and_nir_refused():
    signed = neurons.IF(negative_spikes=True)
    inputs = keras.Input((4, 8, 8, 1))
    h = tk.TandemConv2D(2, 3, neuron=signed)(inputs)
    with pytest.raises(ValueError, match="signed spikes .*tk.AveragePooling2D"):
        tk.MaxPooling2D(2)(h)
    with pytest.raises(ValueError, match="drops the negative spikes"):
        tk.TandemConv2D(2, 3)(keras.layers.ReLU()(h))
    encoder_in = keras.Input((8, 8, 1))
    h = tk.SpikeEncoder(4)(encoder_in)
    h = tk.TandemConv2D(2, 3, neuron=signed)(h)
    out = keras.layers.Dense(3)(tk.SpikeCount()(tk.TimeFlatten()(h)))
    with pytest.raises(ValueError, match="negative spikes"):
        tk.export_nir(keras.Model(encoder_in, out))


def test_convert_a_residual_ann_and_round_trip(tmp_path):
    """A trained residual ANN converted with negative spikes (as tk.convert's default): exactly
    the with_mode('ann') ANN's outputs, a working SNN, and the .keras round trip keeps the
    neurons."""
    rng = np.random.default_rng(6)
    x = rng.random((64, 8, 8, 1)).astype(np.float32)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(h)
    b = keras.layers.Conv2D(4, 3, padding="same")(b)
    h = keras.layers.ReLU()(keras.layers.Add()([h, b]))
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h))
    ann = keras.Model(inputs, out)
    signed = neurons.IF(0.25, rounding=0.5, negative_spikes=True)
    snn = tk.convert(ann, time_steps=8, calibration_data=x, neuron=signed)
    adds = [l for l in snn.layers if isinstance(l, tk.TandemAdd)]
    assert adds and all(l.neuron == signed for l in adds)
    np.testing.assert_allclose(np.asarray(tk.with_mode(snn, "ann")(x)), np.asarray(ann(x)), atol=1e-4)
    agree = np.mean(np.asarray(snn(x)).argmax(-1) == np.asarray(ann(x)).argmax(-1))
    assert agree > 0.8
    assert tk.convert(ann, time_steps=8, calibration_data=x).get_layer(adds[0].name).neuron == \
        neurons.IF(0.5, negative_spikes=True)
    # The same SNN from a plain conversion, switched afterwards (also a trained SNN's path).
    plain = tk.convert(ann, time_steps=8, calibration_data=x, negative_spikes=False)
    switched = tk.convert(plain, time_steps=8, negative_spikes=True)
    assert all(l.neuron == signed for l in switched.layers if isinstance(l, (tk.TandemAdd, tk.TandemConv2D))
               and l.neuron is not None)
    np.testing.assert_array_equal(np.asarray(switched(x)), np.asarray(snn(x)))
    back = tk.convert(switched, time_steps=8, negative_spikes=False)
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(plain(x)))
    with pytest.raises(ValueError, match="negative_spikes must be True, False or None"):
        tk.convert(plain, time_steps=8, negative_spikes="yes")
    path = tmp_path / "snn.keras"
    snn.save(path)
    loaded = keras.models.load_model(path)
    assert [l.neuron for l in loaded.layers if isinstance(l, tk.TandemAdd)] == [signed]
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(snn(x)))


class LayerTest(testing.TestCase):
    def test_run_layer_test(self):
        x = spikes((2, 3, 6, 6, 4), seed=9)
        self.run_layer_test(tk.TandemConv2D, init_kwargs={"filters": 3, "kernel_size": 3,
                                                          "neuron": neurons.IF(negative_spikes=True)},
                            input_data=x, expected_output_shape=(2, 3, 6, 6, 3),
                            expected_num_trainable_weights=4, expected_num_non_trainable_weights=2)
