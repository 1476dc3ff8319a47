"""Residual blocks (method §3): synapse-only layers (neuron=None) output the current z(t),
TandemAdd is the neuron after the addition; forward against NumPy, gradients against the
coupled ANN, every mode, a Keras Add refused when built, round trips, run_layer_test."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

import tandem_keras as tk
from tandem_keras import neurons
from tests.tandem_keras.test_gradients import assert_close
from tests.tandem_keras.test_neurons_reference import (
    assert_spikes_match,
    bn_weights,
    free_potential_np,
    random_bn,
    set_layer_weights,
    synaptic_current_np,
    tandem_add_np,
    tandem_layer_np,
)

EPS = 1e-3
CONV = {"kind": "conv", "strides": 1, "padding": "same"}


def spikes(shape, rate=0.5, seed=0):
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)


def bn_conv(filters, rng, cin, k=3, time_steps=4, **kwargs):
    """A built TandemConv2D with random float32-representable weights and BN statistics."""
    layer = tk.TandemConv2D(filters, k, epsilon=EPS, **kwargs)
    layer.build((None, time_steps, 6, 6, cin))
    kernel = rng.normal(0, 0.5, (k, k, cin, filters)).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, filters, scale=2.0, eps=EPS)
    set_layer_weights(layer, kernel=kernel, **bn_weights(bn))
    bias = None
    if layer.use_bias:
        bias = rng.normal(0.2, 0.5, filters).astype(np.float32).astype(np.float64)
        set_layer_weights(layer, bias=bias)
    return layer, kernel, bias, bn


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize("training", [False, True])
def test_synapse_only_layer_outputs_the_current(training):
    rng = np.random.default_rng(0)
    x = spikes((4, 4, 6, 6, 3))
    layer, kernel, bias, bn = bn_conv(5, rng, 3, neuron=None)
    out = layer(x, training=training)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(np.asarray(out), synaptic_current_np(x, kernel, bias, CONV, bn, training),
                               rtol=1e-5, atol=1e-5)
    # its time-sum is the free potential V_f (method §3: the ANN value of a current)
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), free_potential_np(x, kernel, bias, CONV, bn, training),
                               rtol=1e-5, atol=1e-4)


def test_synapse_only_layer_in_every_mode():
    rng = np.random.default_rng(1)
    x = spikes((3, 4, 6, 6, 3), seed=1)
    layer, kernel, bias, bn = bn_conv(5, rng, 3, neuron=None)
    vf = free_potential_np(x, kernel, bias, CONV, bn, False)
    for mode, expected in (("ann", vf[:, None]), ("quantized", np.repeat(vf[:, None] / 4, 4, axis=1)),
                           ("bptt", synaptic_current_np(x, kernel, bias, CONV, bn, False))):
        other = tk.TandemConv2D(5, 3, epsilon=EPS, neuron=None, mode=mode)
        other.build((None, 4, 6, 6, 3))
        other.set_weights(layer.get_weights())
        inputs = x.sum(axis=1, keepdims=True) if mode == "ann" else x
        np.testing.assert_allclose(np.asarray(other(inputs)), expected, rtol=1e-5, atol=1e-5, err_msg=mode)


@pytest.mark.parametrize("neuron, beta, v0", [("if", 1.0, 0.0), (neurons.IF(0.5), 1.0, 0.5),
                                              (neurons.LIF(0.5, 0.25), 0.5, 0.25)])
def test_tandem_add_exact_against_numpy(neuron, beta, v0):
    """Currents in eighths and spikes, scales 1, 1/2 and 3/4: exact in float32."""
    rng = np.random.default_rng(2)
    currents = rng.integers(-4, 8, (5, 6, 4, 4, 3)) / 8.0
    identity = spikes((5, 6, 4, 4, 3), seed=2)
    other = spikes((5, 6, 4, 4, 3), 0.3, seed=3)
    add = tk.TandemAdd(neuron=neuron, scales=[1.0, 0.5, 0.75])
    out = np.asarray(add([currents.astype(np.float32), identity, other]))
    expected, margin = tandem_add_np([currents, identity, other], 1.0, [1.0, 0.5, 0.75], beta, v0)
    assert (margin == 0).any()
    np.testing.assert_array_equal(out, expected)
    assert 0.05 < expected.mean() < 0.95


def test_residual_block_against_numpy():
    """spikes -> conv (IF) -> conv (current) + identity spikes -> IF: the NumPy block."""
    rng = np.random.default_rng(4)
    x = spikes((4, 5, 6, 6, 3), seed=4)
    conv1, k1, b1, bn1 = bn_conv(3, rng, 3, time_steps=5)
    conv2, k2, b2, bn2 = bn_conv(3, rng, 3, time_steps=5, neuron=None)
    add = tk.TandemAdd(threshold=0.75)
    for training in (False, True):
        h = conv1(x, training=training)
        out = add([conv2(h, training=training), x], training=training)
        expected_h, margin_h = tandem_layer_np(x, k1, b1, CONV, 1.0, bn1, training)
        assert_spikes_match(np.asarray(h), expected_h, margin_h)
        z = synaptic_current_np(np.asarray(h), k2, b2, CONV, bn2, training)
        expected, margin = tandem_add_np([z, x], 0.75)
        assert_spikes_match(np.asarray(out), expected, margin)
        assert 0.05 < expected.mean() < 0.95


def test_tandem_add_modes():
    rng = np.random.default_rng(5)
    z = rng.normal(0.2, 0.5, (3, 4, 5)).astype(np.float32)
    s = spikes((3, 4, 5), seed=5)
    v = z.sum(axis=1) + 0.5 * s.sum(axis=1)
    ann = np.asarray(tk.TandemAdd(mode="ann", threshold=0.5, scales=[1, 0.5])([z.sum(1, keepdims=True),
                                                                               s.sum(1, keepdims=True)]))
    np.testing.assert_allclose(ann, np.maximum(v / 0.5, 0)[:, None], rtol=1e-5)
    quantized = np.asarray(tk.TandemAdd(mode="quantized", threshold=0.5, scales=[1, 0.5],
                                        neuron=neurons.IF(0.5))([z, s]))
    np.testing.assert_array_equal(quantized.sum(axis=1), np.clip(np.floor(v / 0.5 + 0.5), 0, 4))
    bptt = np.asarray(tk.TandemAdd(mode="bptt", scales=[1, 0.5])([z, s]))
    np.testing.assert_array_equal(bptt, np.asarray(tk.TandemAdd(scales=[1, 0.5])([z, s])))


def test_bad_arguments_and_inputs_named():
    with pytest.raises(ValueError, match=r"add \(TandemAdd\) expects a list of at least 2 trains"):
        tk.TandemAdd(name="add")(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"expects trains \[batch, time, \.\.\.\] of one shape"):
        tk.TandemAdd()([np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 5), np.float32)])
    with pytest.raises(ValueError, match="has 3 scales for 2 inputs"):
        tk.TandemAdd(scales=[1, 1, 1])([np.zeros((2, 3, 4), np.float32)] * 2)
    with pytest.raises(ValueError, match="scales must be a list of finite numbers"):
        tk.TandemAdd(scales=[1, float("nan")])
    add = tk.TandemAdd(name="add")
    add([np.zeros((2, 3, 4), np.float32)] * 2)
    with pytest.raises(ValueError, match=r"add \(TandemAdd\) was built for T=3 .* T=5"):
        add([np.zeros((2, 5, 4), np.float32)] * 2)


def test_keras_add_into_a_tandem_layer_refused_when_built():
    inputs = keras.Input((4, 6, 6, 3))
    a = tk.TandemConv2D(3, 3)(inputs)
    summed = keras.layers.Add(name="plain_add")([a, inputs])
    with pytest.raises(ValueError, match=r"^next \(TandemConv2D\) is fed by 'plain_add' \(Add\): a add of "
                                         r"spike trains is not a spike train; merge spike trains and "
                                         r"currents with tk.TandemAdd"):
        tk.TandemConv2D(3, 3, name="next")(summed)
    flat = keras.layers.Dropout(0.1)(tk.TimeFlatten()(summed))      # seen through shape-only layers
    with pytest.raises(ValueError, match=r"fed by 'plain_add' \(Add\)"):
        tk.TandemDense(3, analog_input=True)(flat)
    tk.TandemConv2D(3, 3)(tk.TandemAdd()([a, inputs]))               # the residual layer is accepted


# ----------------------------------------------------------------------------- gradients
def _bn_train(u, gamma, beta):
    mean, var = tf.nn.moments(u, axes=[0, 1, 2])
    return gamma * (u - mean) / tf.sqrt(var + EPS) + beta


@pytest.mark.parametrize("surrogate", ["bounded_relu", "relu"])
def test_residual_block_gradient_is_the_coupled_ann(surrogate):
    """ANN of the block (interlaced, Fig. 10): a1 = clip(BN1(W1 c_x)/theta, 0, T) with the
    SNN count as value, V2 = BN2(W2 a1) (the current's time-sum), V = V2 + w c_x,
    a = clip(V/theta + v0, 0, T); the loss <mean_t R, a>."""
    rng = np.random.default_rng(6)
    t_steps, w, v0 = 4, 0.5, 0.25
    x = spikes((8, t_steps, 6, 6, 3), seed=6)
    conv1, k1, _, bn1 = bn_conv(3, rng, 3, use_bias=False, surrogate=surrogate)
    conv2, k2, _, bn2 = bn_conv(3, rng, 3, use_bias=False, neuron=None)
    add = tk.TandemAdd(scales=[1.0, w], neuron=neurons.IF(v0), surrogate=surrogate)
    r = rng.normal(size=(8, t_steps, 6, 6, 3)).astype(np.float32)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        h = conv1(x_t, training=True)
        loss = tf.reduce_sum(add([conv2(h, training=True), x_t], training=True) * r)
    watched = [conv1.kernel, conv1.gamma, conv1.beta, conv2.kernel, conv2.gamma, conv2.beta]
    got = tape.gradient(loss, watched + [x_t])

    def activation(v, offset=0.0):
        v = v + offset
        return tf.nn.relu(v) if surrogate == "relu" else tf.clip_by_value(v, 0.0, float(t_steps))

    c_x = tf.constant(x.sum(axis=1).astype(np.float64))
    c_h = tf.constant(np.asarray(h).sum(axis=1).astype(np.float64))
    ref_vars = [tf.Variable(v) for v in (k1, bn1["gamma"], bn1["beta"], k2, bn2["gamma"], bn2["beta"])]
    with tf.GradientTape() as tape:
        tape.watch(c_x)
        vf1 = _bn_train(tf.nn.conv2d(c_x, ref_vars[0], 1, "SAME"), ref_vars[1], ref_vars[2])
        a1 = activation(vf1)
        h_value = c_h + (a1 - tf.stop_gradient(a1))
        v2 = _bn_train(tf.nn.conv2d(h_value, ref_vars[3], 1, "SAME"), ref_vars[4], ref_vars[5])
        potential = v2 + w * c_x
        ref_loss = tf.reduce_sum(activation(potential, v0) * r.mean(axis=1))
    ref = tape.gradient(ref_loss, ref_vars + [c_x])
    for v, offset in ((vf1, 0.0), (potential, v0)):
        v = np.asarray(v) + offset
        assert np.abs(v).min() > 1e-4 and np.abs(v - t_steps).min() > 1e-4
    names = ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2"]
    for name, actual, expected in zip(names, got[:-1], ref[:-1]):
        assert_close(np.asarray(actual), np.asarray(expected), name)
    assert_close(np.asarray(got[-1]), np.broadcast_to(np.asarray(ref[-1])[:, None], x.shape), "input")


@pytest.mark.parametrize("mode", ["tandem", "bptt"])
def test_trainable_scales_forward_and_gradient(mode):
    """trainable_scales: the forward is the NumPy neuron on sum_i w_i x_i with the weight's
    values; the gradient of the scales is the coupled ANN's, grad_w_i = sum(grad_V X_i) with
    a = clip(V / theta + v0, 0, T) (tandem), and finite, non-zero through time (bptt)."""
    rng = np.random.default_rng(12)
    theta, v0, t_steps = 0.75, 0.25, 4
    z = (rng.integers(-4, 8, (6, t_steps, 4, 4, 3)) / 8.0).astype(np.float32)
    s = spikes((6, t_steps, 4, 4, 3), seed=12)
    add = tk.TandemAdd(threshold=theta, neuron=neurons.IF(v0), scales=[1.0, 0.5],
                       trainable_scales=True, mode=mode)
    add([z, s])
    assert [w.name for w in add.trainable_weights] == ["scales"]
    np.testing.assert_array_equal(add.current_scales, [1.0, 0.5])
    add.scale_weights.assign([0.75, 1.25])
    out = np.asarray(add([z, s]))
    expected, _ = tandem_add_np([z.astype(np.float64), s], theta, [0.75, 1.25], 1.0, v0)
    np.testing.assert_array_equal(out, expected)
    z = rng.normal(0.1, 0.4, z.shape).astype(np.float32)    # off the clip's corners
    r = rng.normal(size=z.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(add([z, s], training=True) * r)
    got = np.asarray(tape.gradient(loss, add.scale_weights))
    if mode == "bptt":
        assert np.isfinite(got).all() and np.abs(got).min() > 0
        return
    w = tf.Variable([0.75, 1.25], dtype=tf.float64)
    sums = [tf.constant(x.sum(axis=1).astype(np.float64)) for x in (z, s)]
    with tf.GradientTape() as tape:
        potential = w[0] * sums[0] + w[1] * sums[1]
        a = tf.clip_by_value(potential / theta + v0, 0.0, float(t_steps))
        ref_loss = tf.reduce_sum(a * r.mean(axis=1))
    corners = np.asarray(potential) / theta + v0
    assert np.abs(corners).min() > 1e-4 and np.abs(corners - t_steps).min() > 1e-4
    assert_close(got, np.asarray(tape.gradient(ref_loss, w)), "scales")


def test_trainable_scales_round_trip_convert_and_nir(tmp_path):
    """The trained scales travel: .keras, export, with_mode, tk.convert (times the input's
    scale) and NIR's Scale node read the weight, not the initial config."""
    images = keras.Input((6, 6, 2))
    s = tk.SpikeEncoder(3)(keras.layers.Conv2D(4, 3, padding="same")(images))
    h = tk.TandemConv2D(4, 3, padding="same", neuron=None)(s)
    y = tk.TandemAdd(scales=[1.0, 0.5], trainable_scales=True, name="add")([h, s])
    model = keras.Model(images, keras.layers.Dense(3)(tk.SpikeCount()(tk.GlobalAveragePooling2D()(y))))
    model.get_layer("add").scale_weights.assign([0.8, 1.4])
    x = np.random.default_rng(13).uniform(0, 2, (3, 6, 6, 2)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    assert model.get_layer("add").get_config()["trainable_scales"] is True
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("add").current_scales == pytest.approx([0.8, 1.4])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    model.export(str(tmp_path / "export"), verbose=False)
    exported = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(exported.serve(x), expected, rtol=1e-6)
    for mode in tk.MODES:
        assert tk.with_mode(model, mode).get_layer("add").current_scales == pytest.approx([0.8, 1.4])
    calibration = np.random.default_rng(14).uniform(0, 2, (16, 6, 6, 2)).astype(np.float32)
    converted = tk.convert(model, time_steps=3, calibration_data=calibration)
    add, enc = converted.get_layer("add"), converted.get_layer(model.layers[2].name)
    assert add.scale_weights is not None
    assert add.current_scales == pytest.approx([0.8, 1.4 * enc.threshold], rel=1e-6)
    again = tk.convert(model, time_steps=3)                   # a tandem model: kept as it is
    assert again.get_layer("add").current_scales == pytest.approx([0.8, 1.4])
    np.testing.assert_array_equal(again.predict(x, verbose=0), expected)
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.ReLU()(keras.layers.Add()([keras.layers.Conv2D(2, 3, padding="same")(h), h]))
    ann = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(y)))
    for trainable in (False, True):
        snn = tk.convert(ann, time_steps=3, calibration_data=calibration, trainable_scales=trainable)
        add = [layer for layer in snn.layers if isinstance(layer, tk.TandemAdd)][0]
        assert (add.scale_weights is not None) == trainable
        assert len(add.trainable_weights) == int(trainable)
    graph = tk.export_nir(model, tmp_path / "m.nir")
    node = graph.nodes["add_scale1"]
    np.testing.assert_allclose(np.unique(node.scale), [1.4], rtol=1e-6)
    assert "add_scale0" in graph.nodes


# ----------------------------------------------------------------------------- round trips
def assert_trains(model, x):
    """Every trainable weight gets a finite gradient, not all zero."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.isfinite(np.asarray(g)).all() for g in grads), model.name
    assert sum(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads) > len(grads) // 2


def residual_model(mode="tandem"):
    images = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(images)
    s = tk.SpikeEncoder(3, mode=mode)(x)
    h = tk.TandemConv2D(4, 3, mode=mode)(s)
    h = tk.TandemConv2D(6, 3, strides=2, mode=mode, neuron=None)(h)
    shortcut = tk.TandemConv2D(6, 1, strides=2, mode=mode, neuron=None)(s)
    y = tk.TandemAdd(mode=mode, neuron=neurons.LIF(0.9, 0.5), scales=[1.0, 0.75])([h, shortcut])
    y = tk.TandemAdd(mode=mode)([tk.TandemConv2D(6, 3, mode=mode, neuron=None)(y), y])
    logits = keras.layers.Dense(3)(tk.SpikeCount()(tk.GlobalAveragePooling2D(mode=mode)(y)))
    return keras.Model(images, logits)


def test_keras_file_export_and_with_mode_round_trips(tmp_path):
    model = residual_model()
    x = np.random.default_rng(7).uniform(0, 4, (3, 8, 8, 2)).astype(np.float32)
    model(x, training=True)                                     # BN moving statistics move
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0), expected)
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(loaded.serve(x), expected, rtol=1e-6)
    for mode in tk.MODES:
        assert_trains(tk.with_mode(model, mode), x)
    np.testing.assert_array_equal(tk.with_mode(tk.with_mode(model, "ann"), "tandem").predict(x, verbose=0),
                                  expected)


def test_mixed_bfloat16_currents_float32_spikes_exact():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = residual_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(8).uniform(0, 4, (3, 8, 8, 2)).astype(np.float32)
    outputs = keras.Model(model.inputs, [layer.output for layer in model.layers
                                         if isinstance(layer, (tk.TandemConv2D, tk.TandemAdd))])(x)
    kinds = [layer for layer in model.layers if isinstance(layer, (tk.TandemConv2D, tk.TandemAdd))]
    for layer, out in zip(kinds, outputs):
        current = getattr(layer, "neuron", "if") is None
        assert out.dtype == (tf.float32 if current else tf.bfloat16), layer.name
        if not current:
            assert set(np.unique(tf.cast(out, tf.float32).numpy())) <= {0.0, 1.0}


class LayerTest(testing.TestCase):
    def test_run_layer_test(self):
        x = spikes((2, 3, 6, 6, 4), seed=9)
        self.run_layer_test(tk.TandemAdd, init_kwargs={"scales": [1.0, 0.5]}, input_data=[x, x[:, ::-1]],
                            expected_output_shape=(2, 3, 6, 6, 4), expected_num_trainable_weights=0,
                            run_training_check=False)
        self.run_layer_test(tk.TandemAdd, init_kwargs={"scales": [1.0, 0.5], "trainable_scales": True},
                            input_data=[x, x[:, ::-1]], expected_output_shape=(2, 3, 6, 6, 4),
                            expected_num_trainable_weights=1, run_training_check=False)
        self.run_layer_test(tk.TandemConv2D, init_kwargs={"filters": 3, "kernel_size": 3, "neuron": None},
                            input_data=x, expected_output_shape=(2, 3, 6, 6, 3),
                            expected_output_dtype="float32", expected_num_trainable_weights=4,
                            expected_num_non_trainable_weights=2)
        self.run_layer_test(tk.TandemDense, init_kwargs={"units": 3, "neuron": "lif"},
                            input_data=x[:, :, 0, 0], expected_output_shape=(2, 3, 3),
                            expected_num_trainable_weights=4, expected_num_non_trainable_weights=2)
