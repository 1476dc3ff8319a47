"""Forward dynamics of the spiking layers against the float64 NumPy SNN of method §2-§3.

- IF dynamics of TandemDense / TandemConv2D (strides 1 and 2, "same" and "valid"), without
  BN, with BN in training (batch statistics) and in inference (moving statistics), for
  T in {1, 2, 5, 16}.
- The front-loaded SpikeEncoder (counts, order, straight-through gradient).
- The paper's Fig. 1 case: the aggregate potential stays below threshold yet a spike is
  emitted because the positive inputs arrive first.

Float32 vs float64: a neuron whose reference potential comes within 1e-4 of theta at some
step may legitimately spike differently; only such neurons are excluded, and the tests
assert that they are rare (see `assert_spikes_match`).
"""
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tests.tandem_keras.test_neurons_reference import (
    assert_spikes_match,
    bn_weights,
    encode_np,
    layer_variables,
    random_bn,
    set_layer_weights,
    tandem_layer_np,
)

DENSE = {"kind": "dense"}
CONVS = [
    {"kind": "conv", "strides": s, "padding": p} for s in (1, 2) for p in ("same", "valid")
]
OPS = [DENSE] + CONVS
OP_IDS = ["dense"] + [f"conv-s{o['strides']}-{o['padding']}" for o in CONVS]


def make_case(op, time_steps, bn_mode, theta, seed):
    """Random spike train, random layer weights; returns (layer, x, kernel, bias, bn)."""
    rng = np.random.default_rng(seed)
    n = 6
    scale = max(1.0, time_steps / 3.0)
    if op["kind"] == "dense":
        fin, units = 20, 7
        x = (rng.random((n, time_steps, fin)) < 0.4).astype(np.float32)
        kernel = rng.normal(0.0, 0.5, (fin, units)).astype(np.float32)
        layer = tk.TandemDense(units, threshold=theta, batch_norm=bn_mode != "none")
    else:
        cin, units = 3, 5
        x = (rng.random((n, time_steps, 7, 6, cin)) < 0.4).astype(np.float32)
        kernel = rng.normal(0.0, 0.5, (3, 3, cin, units)).astype(np.float32)
        layer = tk.TandemConv2D(units, 3, strides=op["strides"], padding=op["padding"],
                                threshold=theta, batch_norm=bn_mode != "none")
    bias = (rng.normal(0.2, 1.0, units) * scale).astype(np.float32)
    layer(x)  # build
    set_layer_weights(layer, kernel=kernel, bias=bias)
    bn = None
    if bn_mode != "none":
        bn = random_bn(rng, units, scale=scale)
        set_layer_weights(layer, **bn_weights(bn))
    return layer, x, kernel.astype(np.float64), bias.astype(np.float64), bn


@pytest.mark.parametrize("time_steps", [1, 2, 5, 16])
@pytest.mark.parametrize("bn_mode", ["none", "inference", "training"])
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_if_dynamics_match_numpy(op, bn_mode, time_steps):
    theta = 1.0 if time_steps != 5 else 0.75
    seed = 100 * time_steps + OPS.index(op) * 10 + ["none", "inference", "training"].index(bn_mode)
    layer, x, kernel, bias, bn = make_case(op, time_steps, bn_mode, theta, seed)
    training = bn_mode == "training"
    out = np.asarray(layer(x, training=training))
    expected, margin = tandem_layer_np(x, kernel, bias, op, theta, bn, training)
    assert_spikes_match(out, expected, margin)
    counts = out.sum(axis=1)
    assert counts.min() >= 0 and counts.max() <= time_steps
    # the case is informative: some neurons fire, some do not, and for T > 1 some fire
    # more than once (so reset by subtraction is exercised)
    assert 0 < expected.mean() < 1
    if time_steps > 1:
        assert (expected.sum(axis=1) >= 2).any()


@pytest.mark.parametrize("time_steps", [1, 2, 4, 16])
@pytest.mark.parametrize("op", [DENSE, CONVS[2], CONVS[1]], ids=["dense", "conv-s2-same", "conv-s1-valid"])
def test_if_dynamics_exact_with_dyadic_weights(op, time_steps):
    """Weights k/4 and biases k*T/8 (so b/T = k/8) make every potential exact in float32:
    V(t) lands exactly on theta = 1 for many neurons, which checks `V >= theta` (Eq. 3)
    and the reset by subtraction bit for bit, with no neuron excluded."""
    rng = np.random.default_rng(time_steps)
    if op["kind"] == "dense":
        x = (rng.random((6, time_steps, 10)) < 0.5).astype(np.float32)
        kernel = rng.integers(-2, 4, (10, 5)) / 4.0
        layer = tk.TandemDense(5, batch_norm=False)
    else:
        x = (rng.random((4, time_steps, 6, 6, 2)) < 0.5).astype(np.float32)
        kernel = rng.integers(-2, 4, (3, 3, 2, 5)) / 4.0
        layer = tk.TandemConv2D(5, 3, strides=op["strides"], padding=op["padding"], batch_norm=False)
    bias = rng.integers(-2, 5, 5) * time_steps / 8.0
    layer(x)
    set_layer_weights(layer, kernel=kernel, bias=bias)
    out = np.asarray(layer(x))
    expected, margin = tandem_layer_np(x, kernel, bias, op, 1.0)
    assert (margin == 0).any()  # exact ties with the threshold occur
    np.testing.assert_array_equal(out, expected)


def test_potential_equal_to_threshold_fires():
    """Eq. 3: Theta(V - theta) with Theta(0) = 1. z = 0.5 per step, theta = 1: V(2) == 1.0
    fires, the reset leaves 0, V(4) == 1.0 fires again."""
    layer = tk.TandemDense(1, batch_norm=False, use_bias=False)
    x = np.ones((1, 5, 1), np.float32)
    layer(x)
    set_layer_weights(layer, kernel=[[0.5]])
    np.testing.assert_array_equal(np.asarray(layer(x))[0, :, 0], [0, 1, 0, 1, 0])


def test_time_steps_read_from_input():
    layer = tk.TandemDense(3)
    layer(np.zeros((2, 7, 4), np.float32))
    assert layer.time_steps == 7


def test_two_layers_each_match_numpy():
    """Layer 2 is checked on layer 1's actual output: stacking does not change the dynamics."""
    rng = np.random.default_rng(7)
    op = {"kind": "conv", "strides": 2, "padding": "same"}
    x = (rng.random((4, 5, 8, 8, 2)) < 0.5).astype(np.float32)
    l1 = tk.TandemConv2D(6, 3, strides=2, batch_norm=False)
    l2 = tk.TandemConv2D(4, 3, strides=1, padding="valid", batch_norm=False)
    y = l1(x)
    l2(y)
    k1 = rng.normal(0, 0.6, (3, 3, 2, 6)).astype(np.float32)
    b1 = rng.normal(0.5, 0.5, 6).astype(np.float32)
    k2 = rng.normal(0, 0.6, (3, 3, 6, 4)).astype(np.float32)
    b2 = rng.normal(0.5, 0.5, 4).astype(np.float32)
    set_layer_weights(l1, kernel=k1, bias=b1)
    set_layer_weights(l2, kernel=k2, bias=b2)
    y = np.asarray(l1(x))
    z = np.asarray(l2(y))
    e1, m1 = tandem_layer_np(x, k1, b1, op, 1.0)
    assert_spikes_match(y, e1, m1)
    e2, m2 = tandem_layer_np(y, k2, b2, {"kind": "conv", "strides": 1, "padding": "valid"}, 1.0)
    assert_spikes_match(z, e2, m2)


def test_fig1_spike_although_aggregate_potential_below_threshold():
    """Paper Fig. 1: positive synapses fire first, negative ones later.

    Input A (w = +1.0) spikes at t = 1, input B (w = -0.5) at t = 2, 3, 4; theta = 1, T = 4.
    Aggregate (free) potential V_f = 1.0 - 1.5 = -0.5 < theta, but V(1) = 1.0 >= theta, so
    the IF neuron emits one spike at t = 1, while the coupled ANN's count is 0.
    """
    layer = tk.TandemDense(1, threshold=1.0, batch_norm=False, use_bias=False)
    x = np.zeros((1, 4, 2), np.float32)
    x[0, 0, 0] = 1.0
    x[0, 1:, 1] = 1.0
    layer(x)
    set_layer_weights(layer, kernel=[[1.0], [-0.5]])
    out = np.asarray(layer(x))
    v_free = x.sum(axis=1) @ np.array([[1.0], [-0.5]])
    assert v_free[0, 0] == pytest.approx(-0.5) and v_free[0, 0] < 1.0
    np.testing.assert_array_equal(out[0, :, 0], [1.0, 0.0, 0.0, 0.0])
    # the tandem gradient comes from the ANN, whose neuron is silent (V_f < 0): zero
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        loss = tf.reduce_sum(layer(x_t, training=True))
    g_kernel, g_x = tape.gradient(loss, [layer_variables(layer)["kernel"], x_t])
    np.testing.assert_array_equal(np.asarray(g_kernel), 0.0)
    np.testing.assert_array_equal(np.asarray(g_x), 0.0)


# ----------------------------------------------------------------------------- encoder
def encoder_inputs(theta, time_steps, shape, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(-1.0, (time_steps + 1.5) * theta, shape)
    flat = v.reshape(-1)
    # exact multiples of theta (incl. 0 and T*theta) must count fully
    k = np.arange(-1, time_steps + 2)
    flat[: k.size] = k * theta
    return v.astype(np.float32)


@pytest.mark.parametrize("time_steps", [1, 2, 5, 16])
@pytest.mark.parametrize("theta", [1.0, 0.75])
@pytest.mark.parametrize("shape", [(9, 6), (3, 4, 4, 2)])
def test_encoder_counts_and_front_loading(time_steps, theta, shape):
    v = encoder_inputs(theta, time_steps, shape, seed=time_steps)
    s = np.asarray(tk.SpikeEncoder(time_steps, threshold=theta)(v))
    assert s.shape == (shape[0], time_steps) + shape[1:]
    assert np.all((s == 0) | (s == 1))
    expected = encode_np(v.astype(np.float64), time_steps, theta)
    # float32 division may round v/theta across an integer only for v within 1e-5 of a
    # multiple of theta that is not itself exact; such inputs are excluded and rare
    r = v.astype(np.float64) / theta
    ambiguous = (np.abs(r - np.round(r)) < 1e-5) & (r != np.round(r))
    assert ambiguous.mean() < 0.01
    keep = np.broadcast_to(~np.expand_dims(ambiguous, 1), s.shape)
    np.testing.assert_array_equal(s[keep], expected[keep])
    counts = s.sum(axis=1)
    a0 = np.minimum(np.floor(np.maximum(v.astype(np.float64), 0) / theta), time_steps)
    np.testing.assert_array_equal(counts[~ambiguous], a0[~ambiguous])
    # front-loaded: once a neuron stops firing it never fires again
    assert np.all(np.diff(s, axis=1) <= 0)


@pytest.mark.parametrize("time_steps,theta", [(4, 1.0), (5, 0.5)])
def test_encoder_straight_through_gradient(time_steps, theta):
    rng = np.random.default_rng(3)
    v = rng.uniform(-2.0, (time_steps + 2) * theta, (64,)).astype(np.float32)
    # keep clear of the kinks 0 and T*theta (tested separately)
    v[np.abs(v) < 1e-3] = 0.5 * theta
    v[np.abs(v - time_steps * theta) < 1e-3] = 0.5 * theta
    v = v.reshape(8, 8)
    r = rng.normal(size=(8, 8)).astype(np.float32)
    enc = tk.SpikeEncoder(time_steps, threshold=theta)
    v_t = tf.constant(v)
    with tf.GradientTape() as tape:
        tape.watch(v_t)
        loss = tf.reduce_sum(tk.SpikeCount()(enc(v_t, training=True)) * r)
    g = np.asarray(tape.gradient(loss, v_t))
    inside = (v > 0) & (v < time_steps * theta)
    assert inside.any() and (~inside).any()
    np.testing.assert_allclose(g, np.where(inside, r / theta, 0.0), rtol=1e-6, atol=1e-7)


def test_encoder_gradient_per_step_is_rate_read():
    """A loss on the individual steps: d s(t)/d a0 = 1/T (method §3's rate reading), so
    grad_v = mean_t(grad_s(t)) / theta inside (0, T*theta)."""
    time_steps, theta = 4, 1.0
    rng = np.random.default_rng(4)
    v = rng.uniform(0.05, 3.95, (5, 3)).astype(np.float32)
    r = rng.normal(size=(5, time_steps, 3)).astype(np.float32)
    v_t = tf.constant(v)
    with tf.GradientTape() as tape:
        tape.watch(v_t)
        loss = tf.reduce_sum(tk.SpikeEncoder(time_steps, threshold=theta)(v_t, training=True) * r)
    g = np.asarray(tape.gradient(loss, v_t))
    np.testing.assert_allclose(g, r.mean(axis=1) / theta, rtol=1e-5, atol=1e-6)


def test_encoder_gradient_zero_at_kinks():
    """method §2: d a0/d v = 1/theta where 0 < v < T*theta (strict), else 0."""
    time_steps, theta = 3, 0.5
    v = tf.constant([[0.0, time_steps * theta, -0.25, 5.0]], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(v)
        loss = tf.reduce_sum(tk.SpikeCount()(tk.SpikeEncoder(time_steps, threshold=theta)(v)))
    np.testing.assert_array_equal(np.asarray(tape.gradient(loss, v)), [[0.0, 0.0, 0.0, 0.0]])


def test_spike_count_sums_time_axis():
    rng = np.random.default_rng(5)
    s = (rng.random((3, 6, 4, 2)) < 0.5).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(tk.SpikeCount()(s)), s.sum(axis=1))
    np.testing.assert_array_equal(np.asarray(tk.TimeFlatten()(s)), s.reshape(3, 6, 8))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_if_dynamics_in_compiled_graph(jit_compile):
    """The same dynamics inside tf.function (graph) and under XLA, BN in training mode."""
    op = CONVS[1]  # strides 1, valid
    layer, x, kernel, bias, bn = make_case(op, 5, "training", 1.0, seed=77)
    fn = tf.function(lambda s: layer(s, training=True), jit_compile=jit_compile)
    out = np.asarray(fn(tf.constant(x)))
    expected, margin = tandem_layer_np(x, kernel, bias, op, 1.0, bn, training=True)
    assert_spikes_match(out, expected, margin)


def test_current_encoding_feeds_first_if_layer():
    """encoding="current": the first IF layer integrates W' * (a0/T) + b'/T at every step,
    a0 = clip(v/theta, 0, T) (method §2, Rueckauer et al.)."""
    rng = np.random.default_rng(15)
    t_steps, theta = 5, 0.5
    v = rng.normal(0.8, 1.5, (6, 9)).astype(np.float32)
    enc = tk.SpikeEncoder(t_steps, threshold=theta, encoding="current")
    layer = tk.TandemDense(4, batch_norm=False, analog_input=True)  # not 0/1 spikes
    current = enc(v)
    layer(current)
    kernel = rng.normal(0, 0.8, (9, 4)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0, 0.5, 4).astype(np.float32).astype(np.float64)
    set_layer_weights(layer, kernel=kernel, bias=bias)
    out = np.asarray(layer(current))
    a0 = np.clip(v.astype(np.float64) / theta, 0, t_steps)
    s_in = np.repeat((a0 / t_steps)[:, None], t_steps, axis=1)
    expected, margin = tandem_layer_np(s_in, kernel, bias, DENSE, 1.0)
    assert_spikes_match(out, expected, margin)
    assert 0 < expected.mean() < 1
