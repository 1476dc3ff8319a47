"""Gradients of the tandem layers equal those of the coupled ANN (method §3), checked against
hand-built float64 Keras ANNs holding the same weights.

Coupled ANN of a tandem layer: c_in = sum_t s_in(t), V_f = BN(W * c_in + b),
a = clip(V_f / theta, 0, T) ("bounded_relu") or max(V_f / theta, 0) ("relu"). The output
spike train is read as a rate, d s(t)/d a = 1/T, so a loss sum_t <R(t), s(t)> is the ANN
loss <mean_t R(t), a>; the gradient to the input spike train is grad_c_in at every step.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tests.tandem_keras.test_neurons_reference import (
    bn_weights,
    free_potential_np,
    layer_variables,
    random_bn,
    set_layer_weights,
)

EPS = 1e-3


def ann_layers(op, units, kernel_shape, use_bias, bn):
    """The hand-built float64 ANN: Dense/Conv2D (+ BatchNormalization)."""
    if op["kind"] == "dense":
        lin = keras.layers.Dense(units, use_bias=use_bias, dtype="float64")
    else:
        lin = keras.layers.Conv2D(units, kernel_shape[:2], strides=op["strides"],
                                  padding=op["padding"], use_bias=use_bias, dtype="float64")
    bnl = keras.layers.BatchNormalization(epsilon=EPS, dtype="float64") if bn is not None else None
    return lin, bnl


def ann_gradients(op, x, kernel, bias, bn, theta, r, training, surrogate, offset=0.0):
    """Gradients of the ANN loss <mean_t R, a> w.r.t. kernel, bias, gamma, beta, c_in;
    ``offset`` shifts the activation by the neuron's initial potential (a fraction of theta)."""
    units = kernel.shape[-1]
    lin, bnl = ann_layers(op, units, kernel.shape, bias is not None, bn)
    c_in = tf.constant(np.asarray(x, np.float64).sum(axis=1))
    lin(c_in)
    lin.kernel.assign(kernel)
    if bias is not None:
        lin.bias.assign(bias)
    if bnl is not None:
        bnl(lin(c_in))
        for k, v in bn_weights(bn).items():
            getattr(bnl, k).assign(v)
    t_steps = x.shape[1]
    with tf.GradientTape() as tape:
        tape.watch(c_in)
        vf = lin(c_in)
        if bnl is not None:
            vf = bnl(vf, training=training)
        if surrogate == "relu":
            a = tf.nn.relu(vf / theta + offset)
        else:
            a = tf.clip_by_value(vf / theta + offset, 0.0, float(t_steps))
        loss = tf.reduce_sum(a * np.asarray(r, np.float64).mean(axis=1))
    sources = {"kernel": lin.kernel, "c_in": c_in}
    if bias is not None:
        sources["bias"] = lin.bias
    if bnl is not None:
        sources["gamma"], sources["beta"] = bnl.gamma, bnl.beta
    grads = tape.gradient(loss, sources)
    return {k: np.asarray(v) for k, v in grads.items()}


def tandem_gradients(layer, x, r, training):
    variables = layer_variables(layer)
    names = [n for n in ("kernel", "bias", "gamma", "beta") if n in variables]
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        out = layer(x_t, training=training)
        loss = tf.reduce_sum(out * r)
    grads = tape.gradient(loss, [variables[n] for n in names] + [x_t])
    assert all(g is not None for g in grads), dict(zip(names + ["x"], grads))
    return dict(zip(names, [np.asarray(g) for g in grads[:-1]])), np.asarray(grads[-1])


def assert_close(actual, expected, name, scale=None):
    """rtol 1e-4; atol 1e-5 of `scale` (default: the largest expected entry), so an
    analytically zero gradient (bias under training-mode BN) may carry float32 noise."""
    if scale is None:
        scale = np.abs(expected).max()
    scale = max(scale, 1e-3)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * scale, err_msg=name)


def assert_params_close(got, expected):
    scale = max(np.abs(expected[n]).max() for n in got)
    for name, g in got.items():
        assert_close(g, expected[name], name, scale)


def kink_distance(vf, theta, t_steps, surrogate):
    d = np.abs(vf)
    if surrogate != "relu":
        d = np.minimum(d, np.abs(vf - t_steps * theta))
    return d.min()


CASES = [
    {"kind": "dense"},
    {"kind": "conv", "strides": 2, "padding": "same"},
    {"kind": "conv", "strides": 1, "padding": "valid"},
]
CASE_IDS = ["dense", "conv-s2-same", "conv-s1-valid"]


def build_case(op, time_steps, bn_mode, surrogate, theta, seed, use_bias=True):
    rng = np.random.default_rng(seed)
    n = 8
    if op["kind"] == "dense":
        fin, units = 12, 6
        x = (rng.random((n, time_steps, fin)) < 0.5).astype(np.float32)
        kernel = rng.normal(0, 0.4, (fin, units))
        layer = tk.TandemDense(units, threshold=theta, batch_norm=bn_mode != "none",
                               surrogate=surrogate, use_bias=use_bias, epsilon=EPS)
    else:
        cin, units = 2, 4
        x = (rng.random((n, time_steps, 6, 6, cin)) < 0.5).astype(np.float32)
        kernel = rng.normal(0, 0.4, (3, 3, cin, units))
        layer = tk.TandemConv2D(units, 3, strides=op["strides"], padding=op["padding"],
                                threshold=theta, batch_norm=bn_mode != "none",
                                surrogate=surrogate, use_bias=use_bias, epsilon=EPS)
    kernel = kernel.astype(np.float32).astype(np.float64)
    bias = rng.normal(0.5, 1.0, units).astype(np.float32).astype(np.float64) if use_bias else None
    layer(x)
    set_layer_weights(layer, kernel=kernel)
    if use_bias:
        set_layer_weights(layer, bias=bias)
    bn = None
    if bn_mode != "none":
        bn = random_bn(rng, units, scale=time_steps / 2.0, eps=EPS)
        set_layer_weights(layer, **bn_weights(bn))
    out_shape = np.asarray(layer(x)).shape
    r = rng.normal(size=out_shape).astype(np.float32)
    return layer, x, kernel, bias, bn, r


@pytest.mark.parametrize("surrogate", ["bounded_relu", "relu"])
@pytest.mark.parametrize("bn_mode", ["none", "training", "inference"])
@pytest.mark.parametrize("op", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("time_steps", [1, 4])
def test_gradients_equal_coupled_ann(time_steps, op, bn_mode, surrogate):
    theta = 1.0 if time_steps == 1 else 0.8
    seed = 11 * time_steps + 3 * CASES.index(op) + ["none", "training", "inference"].index(bn_mode)
    layer, x, kernel, bias, bn, r = build_case(op, time_steps, bn_mode, surrogate, theta, seed)
    training = bn_mode != "inference"
    vf = free_potential_np(x, kernel, bias, op, bn, training)
    # precondition on the test data: no V_f on a kink of the activation
    assert kink_distance(vf, theta, time_steps, surrogate) > 1e-4
    if surrogate == "bounded_relu":
        # informative case: some neurons on each side of the active range
        assert (vf < 0).any() and (vf > 0).any()
    expected = ann_gradients(op, x, kernel, bias, bn, theta, r, training, surrogate)
    got, g_x = tandem_gradients(layer, x, r, training)
    assert_params_close(got, expected)
    # gradient to the input spike train: grad_c_in broadcast to every step
    assert_close(g_x, np.broadcast_to(np.expand_dims(expected["c_in"], 1), x.shape), "input")
    assert np.abs(expected["kernel"]).max() > 0


def test_gradient_without_bias_and_upper_bound_active():
    """use_bias=False; strong inputs put many neurons above T*theta where the bounded
    surrogate is flat and the relu surrogate is not."""
    op = {"kind": "dense"}
    for surrogate in ("bounded_relu", "relu"):
        layer, x, kernel, _, _, r = build_case(op, 2, "none", surrogate, 0.25, 5, use_bias=False)
        vf = free_potential_np(x, kernel, None, op)
        assert (vf > 2 * 0.25).mean() > 0.1
        assert kink_distance(vf, 0.25, 2, surrogate) > 1e-4
        expected = ann_gradients(op, x, kernel, None, None, 0.25, r, True, surrogate)
        got, g_x = tandem_gradients(layer, x, r, True)
        assert set(got) == {"kernel"}
        assert_close(got["kernel"], expected["kernel"], surrogate)
        assert_close(g_x, np.broadcast_to(expected["c_in"][:, None], x.shape), surrogate)


def test_interlaced_layers_use_snn_counts_forward_and_ann_backward():
    """Two stacked tandem layers with BN (training) and a SpikeCount + Dense readout.

    Reference (Fig. 10): each ANN layer takes the *SNN* spike count of the previous layer
    as input value, a_l = clip(BN(W c_{l-1} + b)/theta, 0, T) with value replaced by c_l
    (a_l + stop_gradient(c_l - a_l)), so gradients flow only through the ANN.
    """
    rng = np.random.default_rng(21)
    t_steps, theta = 4, 1.0
    x = (rng.random((10, t_steps, 9)) < 0.5).astype(np.float32)
    l1 = tk.TandemDense(8, threshold=theta, epsilon=EPS)
    l2 = tk.TandemDense(5, threshold=theta, epsilon=EPS)
    head = keras.layers.Dense(3)
    count = tk.SpikeCount()
    head(count(l2(l1(x))))
    params = {}
    for name, layer, shape in (("1", l1, (9, 8)), ("2", l2, (8, 5))):
        k = rng.normal(0, 0.6, shape).astype(np.float32)
        b = rng.normal(0.5, 0.5, shape[1]).astype(np.float32)
        bn = random_bn(rng, shape[1], scale=2.0, eps=EPS)
        set_layer_weights(layer, kernel=k, bias=b, **bn_weights(bn))
        params[name] = (k, b, bn)
    wr = rng.normal(size=(5, 3)).astype(np.float32)
    head.kernel.assign(wr)
    target = rng.normal(size=(10, 3)).astype(np.float32)

    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        s1 = l1(x_t, training=True)
        s2 = l2(s1, training=True)
        loss = tf.reduce_sum((head(count(s2)) - target) ** 2)
    watched = [layer_variables(l)[n] for l in (l1, l2) for n in ("kernel", "gamma", "beta")]
    grads = tape.gradient(loss, watched + [x_t])
    c1 = np.asarray(s1).sum(axis=1).astype(np.float64)
    c2 = np.asarray(s2).sum(axis=1).astype(np.float64)

    # float64 reference with plain TF ops
    ref_vars = {}
    for name in ("1", "2"):
        k, b, bn = params[name]
        ref_vars[name] = [tf.Variable(np.float64(k)), tf.Variable(np.float64(bn["gamma"])),
                          tf.Variable(np.float64(bn["beta"]))]
    c0 = tf.constant(x.sum(axis=1).astype(np.float64))

    def ann(c, name, c_snn):
        k, g, be = ref_vars[name]
        u = tf.matmul(c, k) + np.float64(params[name][1])
        mean, var = tf.nn.moments(u, axes=[0])
        vf = g * (u - mean) / tf.sqrt(var + EPS) + be
        a = tf.clip_by_value(vf / theta, 0.0, float(t_steps))
        return a + tf.stop_gradient(c_snn - a), vf

    with tf.GradientTape() as tape:
        tape.watch(c0)
        a1, vf1 = ann(c0, "1", c1)
        a2, vf2 = ann(a1, "2", c2)
        ref_loss = tf.reduce_sum((tf.matmul(a2, np.float64(wr)) + np.float64(head.bias.numpy())
                                  - target) ** 2)
    ref = tape.gradient(ref_loss, ref_vars["1"] + ref_vars["2"] + [c0])
    for vf in (vf1, vf2):
        assert kink_distance(np.asarray(vf), theta, t_steps, "bounded_relu") > 1e-4
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5)
    names = ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2"]
    for name, g, e in zip(names, grads[:-1], ref[:-1]):
        assert_close(np.asarray(g), np.asarray(e), name)
    assert_close(np.asarray(grads[-1]), np.broadcast_to(np.asarray(ref[-1])[:, None], x.shape),
                 "input")


# ----------------------------------------------------------------------------- other modes
def test_quantized_mode_gradient_is_straight_through_bounded_relu():
    op = {"kind": "conv", "strides": 1, "padding": "same"}
    rng = np.random.default_rng(18)
    t_steps, theta = 3, 0.5
    x = (rng.random((6, t_steps, 5, 5, 2)) < 0.5).astype(np.float32)
    layer = tk.TandemConv2D(3, 3, threshold=theta, mode="quantized", epsilon=EPS)
    layer(x)
    kernel = rng.normal(0, 0.4, (3, 3, 2, 3)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0, 1, 3).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 3, scale=1.0, eps=EPS)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    r = rng.normal(size=(6, t_steps, 5, 5, 3)).astype(np.float32)
    vf = free_potential_np(x, kernel, bias, op, bn, training=True)
    assert kink_distance(vf, theta, t_steps, "bounded_relu") > 1e-4
    expected = ann_gradients(op, x, kernel, bias, bn, theta, r, True, "bounded_relu")
    got, g_x = tandem_gradients(layer, x, r, True)
    assert_params_close(got, expected)
    assert_close(g_x, np.broadcast_to(expected["c_in"][:, None], x.shape), "input")


def test_ann_mode_gradient_is_relu_ann():
    """mode="ann": input [batch, 1, F] holds activations; output relu(BN(W x + b))."""
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 2, (8, 1, 7)).astype(np.float32)
    layer = tk.TandemDense(4, mode="ann", epsilon=EPS)
    layer(x)
    kernel = rng.normal(0, 0.5, (7, 4)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0, 1, 4).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 4, eps=EPS)
    set_layer_weights(layer, kernel=kernel, bias=bias, **bn_weights(bn))
    r = rng.normal(size=(8, 1, 4)).astype(np.float32)
    expected = ann_gradients({"kind": "dense"}, x, kernel, bias, bn, 1.0, r, True, "relu")
    got, g_x = tandem_gradients(layer, x, r, True)
    assert_params_close(got, expected)
    assert_close(g_x, expected["c_in"][:, None], "input")


def test_bptt_mode_has_nonzero_finite_gradients():
    """The BPTT baseline's surrogate is not fixed by the method (docs/method.md); its forward is checked in
    test_layers.py, here only that gradients reach every weight and the input."""
    rng = np.random.default_rng(10)
    x = (rng.random((4, 5, 6)) < 0.5).astype(np.float32)
    layer = tk.TandemDense(5, mode="bptt")
    layer(x)
    set_layer_weights(layer, kernel=rng.normal(0, 0.6, (6, 5)), bias=np.full(5, 0.5))
    got, g_x = tandem_gradients(layer, x, rng.normal(size=(4, 5, 5)).astype(np.float32), True)
    for name, g in got.items():
        assert np.all(np.isfinite(g)) and np.abs(g).max() > 0, name
    assert np.all(np.isfinite(g_x)) and np.abs(g_x).max() > 0


def test_gradient_ignores_spike_timing():
    """No gradient flows through the IF dynamics: re-timing the input spikes (same counts)
    changes the SNN output but leaves every gradient unchanged (they depend on c_in only)."""
    op = {"kind": "conv", "strides": 1, "padding": "same"}
    layer, x, _, _, _, r = build_case(op, 6, "training", "bounded_relu", 1.0, seed=31)
    # reverse time for every input neuron: identical counts, spikes now back-loaded
    x_late = x[:, ::-1].copy()
    r_mean = np.repeat(r.mean(axis=1, keepdims=True), r.shape[1], axis=1)
    got_a, gx_a = tandem_gradients(layer, x, r_mean, True)
    got_b, gx_b = tandem_gradients(layer, x_late, r_mean, True)
    assert not np.array_equal(np.asarray(layer(x, training=True)),
                              np.asarray(layer(x_late, training=True)))
    assert_params_close(got_b, got_a)
    assert_close(gx_b, gx_a, "input")
