"""Layer-level behaviour: BN folding, moving statistics, configuration errors, modes.

References: the float64 NumPy SNN / quantized ANN in test_neurons_reference.py and Keras'
own BatchNormalization for the moving-statistics update.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tests.tandem_keras.test_neurons_reference import (
    assert_spikes_match,
    bn_fold_np,
    bn_weights,
    free_potential_np,
    front_loaded_np,
    layer_variables,
    quantized_np,
    random_bn,
    set_layer_weights,
    tandem_layer_np,
)

EPS = 1e-3


def conv_case(seed, mode="tandem", strides=2, padding="same", theta=1.0, time_steps=4, **kwargs):
    rng = np.random.default_rng(seed)
    x = (rng.random((5, time_steps, 6, 6, 3)) < 0.5).astype(np.float32)
    layer = tk.TandemConv2D(4, 3, strides=strides, padding=padding, threshold=theta,
                            mode=mode, epsilon=EPS, **kwargs)
    layer(x)
    kernel = rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0.3, 1, 4).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 4, scale=time_steps / 2.0, eps=EPS)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    op = {"kind": "conv", "strides": strides, "padding": padding}
    return layer, x, kernel, bias, bn, op


# ----------------------------------------------------------------------------- BN folding
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_folded_weights_formula(kind):
    rng = np.random.default_rng(1)
    if kind == "dense":
        layer = tk.TandemDense(5, epsilon=EPS)
        layer(np.zeros((2, 3, 4), np.float32))
        kernel = rng.normal(size=(4, 5))
    else:
        layer = tk.TandemConv2D(5, 3, epsilon=EPS)
        layer(np.zeros((2, 3, 4, 4, 2), np.float32))
        kernel = rng.normal(size=(3, 3, 2, 5))
    kernel = kernel.astype(np.float32).astype(np.float64)
    bias = rng.normal(size=5).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 5, eps=EPS)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    k, b = layer.folded_weights()
    ek, eb = bn_fold_np(kernel, bias, bn["gamma"], bn["beta"], bn["moving_mean"],
                        bn["moving_variance"], EPS)
    np.testing.assert_allclose(np.asarray(k), ek, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b), eb, rtol=1e-5, atol=1e-6)


def test_folded_weights_without_bn_are_the_weights():
    layer = tk.TandemDense(3, batch_norm=False)
    layer(np.zeros((1, 2, 4), np.float32))
    rng = np.random.default_rng(2)
    kernel, bias = rng.normal(size=(4, 3)), rng.normal(size=3)
    set_layer_weights(layer, kernel=kernel, bias=bias)
    k, b = layer.folded_weights()
    np.testing.assert_allclose(np.asarray(k), kernel, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(b), bias, rtol=1e-6)
    layer = tk.TandemDense(3, batch_norm=False, use_bias=False)
    layer(np.zeros((1, 2, 4), np.float32))
    set_layer_weights(layer, kernel=kernel)
    np.testing.assert_array_equal(np.asarray(layer.folded_weights()[1]), 0.0)


@pytest.mark.parametrize("padding,strides", [("same", 2), ("valid", 1)])
def test_inference_with_bn_equals_bn_free_layer_with_folded_weights(padding, strides):
    layer, x, kernel, bias, bn, op = conv_case(3, strides=strides, padding=padding)
    plain = tk.TandemConv2D(4, 3, strides=strides, padding=padding, batch_norm=False)
    plain(x)
    k, b = layer.folded_weights()
    set_layer_weights(plain, kernel=np.asarray(k), bias=np.asarray(b))
    out_bn = np.asarray(layer(x, training=False))
    out_plain = np.asarray(plain(x, training=False))
    expected, margin = tandem_layer_np(x, kernel, bias, op, 1.0, bn, training=False)
    # both equal the float64 reference (up to neurons within 1e-4 of theta) ...
    assert_spikes_match(out_bn, expected, margin)
    assert_spikes_match(out_plain, expected, margin)
    # ... and, away from such neurons, each other exactly
    keep = np.broadcast_to((margin >= 1e-4)[:, None], out_bn.shape)
    np.testing.assert_array_equal(out_bn[keep], out_plain[keep])
    assert expected.sum() > 0


def test_training_call_updates_moving_statistics_like_keras_batchnorm():
    """Batch statistics of W c_in + b update the moving ones as keras BatchNormalization does."""
    layer, x, kernel, bias, bn, op = conv_case(4, momentum=0.95)
    keras_bn = keras.layers.BatchNormalization(momentum=0.95, epsilon=EPS, dtype="float64")
    c_in = x.sum(axis=1).astype(np.float64)
    u = tf.nn.conv2d(c_in, kernel, strides=2, padding="SAME") + bias
    keras_bn(u)
    for k, v in bn_weights(bn).items():
        getattr(keras_bn, k).assign(v)
    keras_bn(u, training=True)
    layer(x, training=True)
    variables = layer_variables(layer)
    np.testing.assert_allclose(np.asarray(variables["moving_mean"]),
                               np.asarray(keras_bn.moving_mean), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(variables["moving_variance"]),
                               np.asarray(keras_bn.moving_variance), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(variables["moving_mean"]), bn["moving_mean"])
    # inference calls leave them alone
    before = np.asarray(variables["moving_mean"]).copy()
    layer(x, training=False)
    np.testing.assert_array_equal(np.asarray(variables["moving_mean"]), before)


def test_weight_names():
    layer = tk.TandemConv2D(2, 3)
    layer(np.zeros((1, 2, 4, 4, 1), np.float32))
    assert set(layer_variables(layer)) == {"kernel", "bias", "gamma", "beta", "moving_mean",
                                          "moving_variance"}
    assert len(layer.trainable_weights) == 4
    layer = tk.TandemDense(2, batch_norm=False, use_bias=False)
    layer(np.zeros((1, 2, 4), np.float32))
    assert set(layer_variables(layer)) == {"kernel"}


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [0, -3, 2.5, "4", None])
def test_encoder_rejects_bad_time_steps(bad):
    with pytest.raises(ValueError, match="time_steps"):
        tk.SpikeEncoder(bad)


@pytest.mark.parametrize("make", [
    lambda t: tk.SpikeEncoder(4, threshold=t),
    lambda t: tk.TandemDense(3, threshold=t),
    lambda t: tk.TandemConv2D(3, 3, threshold=t),
])
@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_nonpositive_threshold_rejected(make, bad):
    with pytest.raises(ValueError, match="threshold"):
        make(bad)


def test_unknown_surrogate_rejected():
    with pytest.raises(ValueError, match="surrogate"):
        tk.TandemDense(3, surrogate="sigmoid")
    with pytest.raises(ValueError, match="surrogate"):
        tk.TandemConv2D(3, 3, surrogate="tanh")


def test_unknown_mode_rejected():
    assert tuple(tk.MODES) == ("tandem", "ann", "quantized", "bptt")
    for make in (lambda: tk.TandemDense(3, mode="snn"),
                 lambda: tk.TandemConv2D(3, 3, mode="rate"),
                 lambda: tk.SpikeEncoder(4, mode="poisson")):
        with pytest.raises(ValueError, match="mode"):
            make()
    model = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2), tk.TandemDense(2)])
    with pytest.raises(ValueError, match="mode"):
        tk.with_mode(model, "fast")


def test_unknown_encoding_rejected():
    with pytest.raises(ValueError, match="encoding"):
        tk.SpikeEncoder(4, encoding="poisson")


@pytest.mark.parametrize("make,shape", [
    (lambda: tk.TandemDense(3), (2, 5)),             # [batch, F]: no time axis
    (lambda: tk.TandemConv2D(3, 3), (2, 6, 6, 1)),   # [batch, H, W, C]: no time axis
])
def test_input_without_time_axis_rejected(make, shape):
    with pytest.raises(ValueError, match=r"(?i)time|ndim|rank"):
        make()(np.zeros(shape, np.float32))


# ----------------------------------------------------------------------------- modes: forward
@pytest.mark.parametrize("training", [False, True])
def test_quantized_mode_forward_is_eq11_front_loaded(training):
    theta, t_steps = 0.5, 3
    layer, x, kernel, bias, bn, op = conv_case(5, mode="quantized", theta=theta,
                                               time_steps=t_steps, strides=1)
    out = np.asarray(layer(x, training=training))
    expected, vf = quantized_np(x, kernel, bias, op, theta, bn, training)
    r = vf / theta
    ambiguous = np.abs(r - np.round(r)) < 1e-4  # float32 floor may round either way
    assert ambiguous.mean() < 0.01
    keep = np.broadcast_to(~ambiguous[:, None], out.shape)
    np.testing.assert_array_equal(out[keep], expected[keep])
    counts = out.sum(axis=1)
    assert counts.min() >= 0 and counts.max() <= t_steps
    assert (counts == t_steps).any() and (counts == 0).any() and ((counts > 0) & (counts < t_steps)).any()
    assert np.all(np.diff(out, axis=1) <= 0)  # front-loaded


def test_ann_mode_forward_is_relu_ann():
    rng = np.random.default_rng(6)
    v = rng.normal(0.5, 2.0, (6, 5, 5, 2)).astype(np.float32)
    enc = tk.SpikeEncoder(4, mode="ann")
    e = np.asarray(enc(v))
    assert e.shape == (6, 1, 5, 5, 2)
    np.testing.assert_allclose(e[:, 0], np.maximum(v, 0), rtol=1e-6)
    layer = tk.TandemConv2D(3, 3, strides=2, mode="ann", epsilon=EPS)
    layer(e)
    kernel = rng.normal(0, 0.5, (3, 3, 2, 3)).astype(np.float32).astype(np.float64)
    bias = rng.normal(size=3).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 3, eps=EPS)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    op = {"kind": "conv", "strides": 2, "padding": "same"}
    for training in (False, True):
        out = np.asarray(layer(e, training=training))
        assert out.shape == (6, 1, 3, 3, 3)
        vf = free_potential_np(e.astype(np.float64), kernel, bias, op, bn, training)
        np.testing.assert_allclose(out[:, 0], np.maximum(vf, 0), rtol=1e-4, atol=1e-5)
        assert (out > 0).any() and (out == 0).any()
    np.testing.assert_allclose(np.asarray(tk.SpikeCount()(out)), out[:, 0])


@pytest.mark.parametrize("training", [False, True])
def test_bptt_mode_forward_is_the_snn(training):
    layer, x, kernel, bias, bn, op = conv_case(7, mode="bptt")
    out = np.asarray(layer(x, training=training))
    expected, margin = tandem_layer_np(x, kernel, bias, op, 1.0, bn, training)
    assert_spikes_match(out, expected, margin)


# ----------------------------------------------------------------------------- with_mode
def small_model(t_steps=3):
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(4, 3, padding="same"),
        keras.layers.BatchNormalization(),
        tk.SpikeEncoder(t_steps),
        tk.TandemConv2D(5, 3, strides=2),
        tk.TimeFlatten(),
        tk.TandemDense(6),
        tk.SpikeCount(),
        keras.layers.Dense(3),
    ])


def numpy_forward(model, x, mode):
    """Inference forward of `small_model` in float64 NumPy for mode tandem/quantized."""
    conv, bnl, enc, tc, _, td, _, head = model.layers
    w = lambda l: [np.asarray(v, np.float64) for v in l.get_weights()]  # noqa: E731
    k0, b0 = w(conv)
    g, be, mm, mv = w(bnl)
    v = tf.nn.conv2d(x.astype(np.float64), k0, 1, "SAME").numpy() + b0
    v = g * (v - mm) / np.sqrt(mv + bnl.epsilon) + be
    t_steps = enc.time_steps
    s = front_loaded_np(np.minimum(np.floor(np.maximum(v, 0)), t_steps), t_steps)
    margins = [np.abs(v - np.round(v)).reshape(v.shape[0], -1).min(axis=1)]
    for layer, op in ((tc, {"kind": "conv", "strides": 2, "padding": "same"}),
                      (td, {"kind": "dense"})):
        lv = {n: np.asarray(v, np.float64) for n, v in layer_variables(layer).items()}
        bn = dict(gamma=lv["gamma"], beta=lv["beta"], moving_mean=lv["moving_mean"],
                  moving_variance=lv["moving_variance"], eps=EPS)
        if op["kind"] == "dense":
            s = s.reshape(s.shape[:2] + (-1,))
        if mode == "tandem":
            s, margin = tandem_layer_np(s, lv["kernel"], lv["bias"], op, 1.0, bn)
        else:
            s, vf = quantized_np(s, lv["kernel"], lv["bias"], op, 1.0, bn)
            margin = np.abs(vf - np.round(vf))
        margins.append(margin.reshape(margin.shape[0], -1).min(axis=1))
    kr, br = w(head)
    return s.sum(axis=1) @ kr + br, np.min(margins, axis=0)


def test_with_mode_switches_every_layer_and_keeps_weights():
    rng = np.random.default_rng(12)
    model = small_model()
    x = rng.uniform(0, 3, (16, 6, 6, 1)).astype(np.float32)
    model(x)
    # random BN statistics so inference is not the identity normalization
    for layer in model.layers:
        names = layer_variables(layer)
        if "moving_variance" in names:
            n = names["gamma"].shape[0]
            set_layer_weights(layer, gamma=rng.uniform(0.5, 1.5, n) * 2,
                              beta=rng.normal(0.5, 1, n) * 2,
                              moving_mean=rng.normal(0, 0.5, n),
                              moving_variance=rng.uniform(0.5, 2, n))
    quant = tk.with_mode(model, "quantized")
    for layer in quant.layers:
        if isinstance(layer, (tk.TandemConv2D, tk.TandemDense, tk.SpikeEncoder)):
            assert layer.mode == "quantized"
    for a, b in zip(model.get_weights(), quant.get_weights()):
        np.testing.assert_array_equal(a, b)
    for mode, m in (("tandem", model), ("quantized", quant)):
        out = np.asarray(m.predict(x, verbose=0))
        expected, margin = numpy_forward(model, x, mode)
        clear = margin > 1e-4  # samples with no neuron near a threshold/integer anywhere
        assert clear.mean() > 0.7
        np.testing.assert_allclose(out[clear], expected[clear], rtol=1e-4, atol=1e-4)
    back = tk.with_mode(quant, "tandem")
    np.testing.assert_array_equal(np.asarray(back.predict(x, verbose=0)),
                                  np.asarray(model.predict(x, verbose=0)))
    ann = tk.with_mode(model, "ann")
    assert all(getattr(l, "mode", "ann") == "ann" for l in ann.layers)
    assert np.asarray(ann.predict(x, verbose=0)).shape == (16, 3)


# ----------------------------------------------------------------------------- odds and ends
def test_non_spike_input_rejected():
    layer = tk.TandemDense(3)
    with pytest.raises(ValueError, match="spike"):
        layer(np.full((2, 4, 5), 2.5, np.float32))


def test_folded_weights_with_batch_statistics():
    layer, x, kernel, bias, bn, op = conv_case(8)
    k, b = layer.folded_weights(training=True, inputs=x)
    from tests.tandem_keras.test_neurons_reference import folded_np
    ek, eb = folded_np(x, kernel, bias, op, bn, training=True)
    np.testing.assert_allclose(np.asarray(k), ek, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b), eb, rtol=1e-4, atol=1e-5)


def test_time_distributed_flatten_between_layers_equals_time_flatten():
    """method §1: any Keras layer that keeps axis 1 works between tandem layers."""
    rng = np.random.default_rng(13)
    x = (rng.random((3, 4, 5, 5, 2)) < 0.5).astype(np.float32)
    conv = tk.TandemConv2D(3, 3, strides=2, batch_norm=False)
    dense = tk.TandemDense(4, batch_norm=False)
    s = conv(x)
    a = np.asarray(dense(tk.TimeFlatten()(s)))
    b = np.asarray(dense(keras.layers.TimeDistributed(keras.layers.Flatten())(s)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(tk.TimeFlatten()(s)), np.asarray(s).reshape(3, 4, -1))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_forward_exact_and_gradient_close(policy):
    """Under a mixed policy (AutoCastVariable kernels) the SNN is unchanged: with dyadic
    weights every product is exact in 16 bits, so spikes equal the float64 reference bit
    for bit; gradients still reach the float32 variables and match the coupled ANN to
    16-bit precision."""
    rng = np.random.default_rng(14)
    t_steps = 4
    x = (rng.random((6, t_steps, 6, 6, 2)) < 0.5).astype(np.float32)
    layer = tk.TandemConv2D(4, 3, strides=1, batch_norm=False, dtype=policy)
    layer(x)
    kernel = rng.integers(-2, 4, (3, 3, 2, 4)) / 4.0
    bias = (2 * rng.integers(-2, 5, 4) + 1) / 16.0  # b/T = odd/64: no V_f on 0 or T
    set_layer_weights(layer, kernel=kernel, bias=bias)
    op = {"kind": "conv", "strides": 1, "padding": "same"}
    expected, _ = tandem_layer_np(x, kernel, bias, op, 1.0)
    assert 0 < expected.mean() < 1
    x_t = tf.constant(x)
    r = rng.normal(size=expected.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = layer(x_t, training=True)
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * r)
    np.testing.assert_array_equal(np.asarray(tf.cast(out, tf.float32)), expected)
    g_k, g_b = tape.gradient(loss, [layer_variables(layer)["kernel"], layer_variables(layer)["bias"]])
    assert g_k.dtype == tf.float32
    # coupled ANN gradient (no BN): grad_a = mean_t r, mask 0 < V_f < T
    vf = free_potential_np(x, kernel, bias, op)
    grad_v = r.mean(axis=1) * ((vf > 0) & (vf < t_steps))
    assert not np.any(np.isin(vf, [0.0, float(t_steps)]))  # no kinks hit exactly
    c_in = x.sum(axis=1).astype(np.float64)
    ek = np.zeros_like(kernel)  # d/dW of sum(grad_v * conv(c_in, W)), "same" 3x3 stride 1
    pad = np.pad(c_in, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for i in range(3):
        for j in range(3):
            ek[i, j] = np.einsum("nhwc,nhwf->cf", pad[:, i:i + 6, j:j + 6], grad_v)
    np.testing.assert_allclose(np.asarray(g_k), ek, rtol=2e-2, atol=2e-2 * np.abs(ek).max())
    np.testing.assert_allclose(np.asarray(g_b), grad_v.sum(axis=(0, 1, 2)), rtol=2e-2,
                               atol=2e-2 * np.abs(grad_v.sum(axis=(0, 1, 2))).max())
