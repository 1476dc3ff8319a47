"""Independent float64 NumPy references for method §2-§4, and tests of the references.

Nothing here imports `tandem_keras`: these functions re-implement the equations of
docs/method.md so that the library can be checked against them.

- `conv2d_np`: cross-correlation with TensorFlow's "same"/"valid" padding and strides.
- `bn_fold_np`: W' = W * g, b' = (b - mu) * g + beta, g = gamma / sqrt(var + eps).
- `if_np`: IF neuron, reset by subtraction, V(0) = 0, spike when V >= theta (Eq. 2-3).
- `neuron_np`: IF or LIF (leak beta per step, after the reset) from V(0) = v0 theta.
- `avg_pool_np`, `max_pool_np`, `global_avg_np`: pooling of every time step (TF's padding;
  "same" average pooling averages the window's elements inside the image).
- `tandem_add_np`: the neuron after a residual addition of weighted trains.
- `tandem_layer_np`: a whole tandem layer forward (method §3), with BN statistics from the
  batch (training) or given moving statistics (inference).
- `encode_np`: the front-loaded encoder of method §2.
- `quantized_np`: the bounded quantized ANN of Eq. 11, sent as a front-loaded train.

The module is a test file itself (its tests check the references against TensorFlow ops
and hand-computed values), and the other core test files import it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

# A neuron whose float64 reference potential comes within this distance of the threshold
# (at any step) may legitimately spike differently in float32; such neurons are excluded
# from exact comparisons and their number is asserted to be small.
NEAR_THRESHOLD_TOL = 1e-4


# ----------------------------------------------------------------------------- conv / dense
def _same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def conv2d_np(x: np.ndarray, kernel: np.ndarray, strides: int = 1, padding: str = "same"):
    """x [N,H,W,C], kernel [kh,kw,C,F] -> [N,H',W',F]; TF cross-correlation convention."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    n, h, w, c = x.shape
    kh, kw, kc, f = kernel.shape
    assert kc == c
    s = strides
    if padding == "same":
        oh, pt, pb = _same_pads(h, kh, s)
        ow, pl, pr = _same_pads(w, kw, s)
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    elif padding == "valid":
        oh = -(-(h - kh + 1) // s)
        ow = -(-(w - kw + 1) // s)
    else:
        raise ValueError(padding)
    out = np.zeros((n, oh, ow, f))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + (oh - 1) * s + 1 : s, j : j + (ow - 1) * s + 1 : s, :]
            out += patch @ kernel[i, j]
    return out


def linear_np(x: np.ndarray, kernel: np.ndarray, op: dict) -> np.ndarray:
    """Applies a dense ([.., F] @ [F, U]) or conv op described by `op` to x [N, ...]."""
    if op["kind"] == "dense":
        return np.asarray(x, np.float64) @ np.asarray(kernel, np.float64)
    return conv2d_np(x, kernel, op["strides"], op["padding"])


def _reduce_axes(op: dict) -> tuple[int, ...]:
    return (0,) if op["kind"] == "dense" else (0, 1, 2)


# ----------------------------------------------------------------------------- BN folding
def bn_fold_np(kernel, bias, gamma, beta, mean, var, eps):
    """BN folded into the weights (method §3): W' = W g, b' = (b - mu) g + beta."""
    g = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    k = np.asarray(kernel, np.float64) * g
    b = 0.0 if bias is None else np.asarray(bias, np.float64)
    return k, (b - np.asarray(mean, np.float64)) * g + np.asarray(beta, np.float64)


# ----------------------------------------------------------------------------- IF neurons
def if_np(z: np.ndarray, theta: float):
    """IF with reset by subtraction over axis 1 (time).

    V(t) = V(t-1) + z(t) - theta * s(t-1), V(0) = 0, s(t) = [V(t) >= theta].
    Returns (spikes [N,T,...], margin [N,...]) where margin = min_t |V(t) - theta|.
    """
    z = np.asarray(z, np.float64)
    v = np.zeros(z.shape[:1] + z.shape[2:])
    s_prev = np.zeros_like(v)
    spikes = np.zeros_like(z)
    margin = np.full(v.shape, np.inf)
    for t in range(z.shape[1]):
        v = v + z[:, t] - theta * s_prev
        margin = np.minimum(margin, np.abs(v - theta))
        s_prev = (v >= theta).astype(np.float64)
        spikes[:, t] = s_prev
    return spikes, margin


def neuron_np(z: np.ndarray, theta: float, beta: float = 1.0, v0: float = 0.0):
    """IF (beta = 1) or LIF neurons over axis 1, reset by subtraction, leak after the reset.

    U(t) = beta * (U(t-1) - theta * s(t-1)) + z(t), U(0) = v0 * theta, s(0) = 0,
    s(t) = [U(t) >= theta]. Returns (spikes, margin) as `if_np`.
    """
    z = np.asarray(z, np.float64)
    u = np.full(z.shape[:1] + z.shape[2:], v0 * theta)
    s_prev = np.zeros_like(u)
    spikes = np.zeros_like(z)
    margin = np.full(u.shape, np.inf)
    for t in range(z.shape[1]):
        u = beta * (u - theta * s_prev) + z[:, t]
        margin = np.minimum(margin, np.abs(u - theta))
        s_prev = (u >= theta).astype(np.float64)
        spikes[:, t] = s_prev
    return spikes, margin


def _pool_windows(x: np.ndarray, pool: tuple, strides: tuple, padding: str):
    """Yields (i, j, window [N, h, w, C]) of x [N, H, W, C] with TF's padding rules
    ("same": windows cut at the border, no padded values)."""
    n, h, w, c = x.shape
    if padding == "same":
        oh, pt, _ = _same_pads(h, pool[0], strides[0])
        ow, pl, _ = _same_pads(w, pool[1], strides[1])
    else:
        oh, pt = -(-(h - pool[0] + 1) // strides[0]), 0
        ow, pl = -(-(w - pool[1] + 1) // strides[1]), 0
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * strides[0] - pt, j * strides[1] - pl
            r1, c1 = min(r0 + pool[0], h), min(c0 + pool[1], w)
            yield i, j, x[:, max(r0, 0):r1, max(c0, 0):c1, :], (oh, ow)


def _pool_np(x, pool, strides, padding, reduce):
    x = np.asarray(x, np.float64)
    out = None
    for i, j, window, (oh, ow) in _pool_windows(x, pool, strides, padding):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
        out[:, i, j] = reduce(window.reshape(x.shape[0], -1, x.shape[3]), axis=1)
    return out


def avg_pool_np(s, pool=(2, 2), strides=None, padding="valid"):
    """Average pooling of every step of s [N, T, H, W, C]."""
    s = np.asarray(s, np.float64)
    strides = strides or pool
    return np.stack([_pool_np(s[:, t], pool, strides, padding, np.mean)
                     for t in range(s.shape[1])], axis=1)


def max_pool_np(s, pool=(2, 2), strides=None, padding="valid"):
    """Max pooling of every step of s [N, T, H, W, C] (an OR of binary spikes)."""
    s = np.asarray(s, np.float64)
    strides = strides or pool
    return np.stack([_pool_np(s[:, t], pool, strides, padding, np.max)
                     for t in range(s.shape[1])], axis=1)


def global_avg_np(s):
    """[N, T, H, W, C] -> [N, T, C]."""
    return np.asarray(s, np.float64).mean(axis=(2, 3))


def tandem_add_np(trains, theta=1.0, scales=None, beta=1.0, v0=0.0):
    """The neuron after sum_i w_i x_i(t) (method §3, residual neuron): (spikes, margin)."""
    scales = scales or [1.0] * len(trains)
    z = sum(w * np.asarray(x, np.float64) for w, x in zip(scales, trains))
    return neuron_np(z, theta, beta, v0)


def front_loaded_np(count: np.ndarray, time_steps: int) -> np.ndarray:
    """s[t] = 1 if count >= t + 1: [N, ...] -> [N, T, ...]."""
    t = np.arange(time_steps).reshape((1, time_steps) + (1,) * (count.ndim - 1))
    return (np.expand_dims(count, 1) >= t + 1).astype(np.float64)


def encode_np(v: np.ndarray, time_steps: int, theta: float = 1.0, v0: float = 0.0) -> np.ndarray:
    """method §2: a0 = clip(floor(v/theta + v0), 0, T), front-loaded (v0 = 0: Eq. 11)."""
    a0 = np.clip(np.floor(np.asarray(v, np.float64) / theta + v0), 0, time_steps)
    return front_loaded_np(a0, time_steps)


# ----------------------------------------------------------------------------- tandem layer
def bn_statistics_np(s_in, kernel, bias, op):
    """Batch mean / biased variance of W * c_in + b over batch (and space for conv)."""
    c_in = np.asarray(s_in, np.float64).sum(axis=1)
    u = linear_np(c_in, kernel, op)
    if bias is not None:
        u = u + bias
    axes = _reduce_axes(op)
    return u.mean(axis=axes), u.var(axis=axes)


def folded_np(s_in, kernel, bias, op, bn=None, training=False):
    """(W', b') that the SNN runs with. bn: dict gamma, beta, moving_mean, moving_variance, eps."""
    if bn is None:
        return np.asarray(kernel, np.float64), (
            np.zeros(kernel.shape[-1]) if bias is None else np.asarray(bias, np.float64)
        )
    if training:
        mean, var = bn_statistics_np(s_in, kernel, bias, op)
    else:
        mean, var = bn["moving_mean"], bn["moving_variance"]
    return bn_fold_np(kernel, bias, bn["gamma"], bn["beta"], mean, var, bn["eps"])


def free_potential_np(s_in, kernel, bias, op, bn=None, training=False):
    """V_f = BN(W c_in + b) = W' c_in + b' (Eq. 4 with BN)."""
    k, b = folded_np(s_in, kernel, bias, op, bn, training)
    return linear_np(np.asarray(s_in, np.float64).sum(axis=1), k, op) + b


def tandem_layer_np(s_in, kernel, bias, op, theta=1.0, bn=None, training=False):
    """method §3 forward: z(t) = W' s_in(t) + b'/T, IF dynamics. Returns (spikes, margin)."""
    s_in = np.asarray(s_in, np.float64)
    n, t_steps = s_in.shape[:2]
    k, b = folded_np(s_in, kernel, bias, op, bn, training)
    flat = s_in.reshape((n * t_steps,) + s_in.shape[2:])
    z = linear_np(flat, k, op) + b / t_steps
    z = z.reshape((n, t_steps) + z.shape[1:])
    return if_np(z, theta)


def synaptic_current_np(s_in, kernel, bias, op, bn=None, training=False):
    """z(t) = W' s_in(t) + b'/T of a synapse-only layer (neuron=None), [N, T, ...]."""
    s_in = np.asarray(s_in, np.float64)
    n, t_steps = s_in.shape[:2]
    k, b = folded_np(s_in, kernel, bias, op, bn, training)
    z = linear_np(s_in.reshape((n * t_steps,) + s_in.shape[2:]), k, op) + b / t_steps
    return z.reshape((n, t_steps) + z.shape[1:])


def neuron_layer_np(s_in, kernel, bias, op, theta=1.0, bn=None, training=False, beta=1.0, v0=0.0):
    """A tandem layer with an IF or LIF neuron from V(0) = v0 theta: (spikes, margin)."""
    return neuron_np(synaptic_current_np(s_in, kernel, bias, op, bn, training), theta, beta, v0)


def quantized_np(s_in, kernel, bias, op, theta=1.0, bn=None, training=False, v0=0.0):
    """Bounded quantized ANN (Eq. 11, shifted by v0) as front-loaded spikes; (spikes, V_f)."""
    t_steps = np.asarray(s_in).shape[1]
    vf = free_potential_np(s_in, kernel, bias, op, bn, training)
    a = np.clip(np.floor(vf / theta + v0), 0, t_steps)
    return front_loaded_np(a, t_steps), vf


def assert_spikes_match(actual, expected, margin, max_excluded_fraction=0.01):
    """Exact equality of spike trains except for neurons whose float64 potential came
    within NEAR_THRESHOLD_TOL of theta; asserts that such neurons are rare
    (at most 2, or `max_excluded_fraction` of the neurons)."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert np.all((actual == 0.0) | (actual == 1.0)), "output is not a 0/1 spike train"
    near = margin < NEAR_THRESHOLD_TOL  # [N, ...]
    allowed = max(2, math.ceil(max_excluded_fraction * near.size))
    assert near.sum() <= allowed, f"{int(near.sum())} of {near.size} neurons near threshold"
    keep = np.broadcast_to(~np.expand_dims(near, 1), expected.shape)
    mismatch = (actual != expected) & keep
    assert not mismatch.any(), (
        f"{int(mismatch.sum())} spikes differ from the NumPy SNN reference "
        f"(of {int(keep.sum())} compared; first at {np.argwhere(mismatch)[:3].tolist()})"
    )
    return int(near.sum())


# ----------------------------------------------------------------------------- self-tests
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("hw", [(7, 7), (6, 5)])
@pytest.mark.parametrize("ksize", [(3, 3), (2, 3), (1, 1)])
def test_conv2d_np_matches_tensorflow(padding, strides, hw, ksize):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2,) + hw + (3,))
    k = rng.normal(size=ksize + (3, 4))
    expected = tf.nn.conv2d(x, k, strides=strides, padding=padding.upper()).numpy()
    np.testing.assert_allclose(conv2d_np(x, k, strides, padding), expected, rtol=1e-12, atol=1e-12)


def test_if_np_hand_computed():
    # theta = 1: z = 0.6 each step -> V: 0.6, 1.2 (spike), 0.8, 1.4 (spike), 1.0 (spike), 0.6
    z = np.full((1, 6, 1), 0.6)
    s, margin = if_np(z, 1.0)
    np.testing.assert_array_equal(s[0, :, 0], [0, 1, 0, 1, 1, 0])
    assert margin[0, 0] == pytest.approx(0.0, abs=1e-12)  # V(5) == 1.0 up to rounding
    # reset by subtraction keeps the surplus: z = 2.5 once then 0 -> spikes at t=1,2, V ends 0.5
    z = np.zeros((1, 4, 1))
    z[0, 0, 0] = 2.5
    s, _ = if_np(z, 1.0)
    np.testing.assert_array_equal(s[0, :, 0], [1, 1, 0, 0])
    # theta = 2 with negative input: never fires
    s, _ = if_np(np.full((1, 3, 1), -1.0), 2.0)
    assert s.sum() == 0


def test_neuron_np_hand_computed():
    # beta = 1, v0 = 0 is if_np
    z = np.random.default_rng(3).normal(0.4, 0.6, (4, 7, 3))
    np.testing.assert_array_equal(neuron_np(z, 0.8)[0], if_np(z, 0.8)[0])
    # LIF, beta = 0.5: z = 0.6 -> U: 0.6, 0.9, 1.05 (spike), 0.5*0.05 + 0.6 = 0.625
    s, _ = neuron_np(np.full((1, 4, 1), 0.6), 1.0, beta=0.5)
    np.testing.assert_array_equal(s[0, :, 0], [0, 0, 1, 0])
    # v0 = 0.5: U(0) = 0.5; z = 0.5 -> U: 1.0 (spike), 0.5, 1.0 (spike): rounding of 1.5 = 2
    s, _ = neuron_np(np.full((1, 3, 1), 0.5), 1.0, v0=0.5)
    np.testing.assert_array_equal(s[0, :, 0], [1, 0, 1])
    # LIF with v0: U(1) = beta * v0 * theta + z(1) = 0.5 * 0.5 * 2 + 1.6 = 2.1 >= 2
    s, _ = neuron_np(np.array([[[1.6], [0.0]]]), 2.0, beta=0.5, v0=0.5)
    np.testing.assert_array_equal(s[0, :, 0], [1, 0])


def test_pooling_np_hand_computed():
    x = np.arange(25, dtype=float).reshape(1, 1, 5, 5, 1)
    # valid 2x2 stride 2: windows at rows/cols 0-1 and 2-3
    np.testing.assert_array_equal(avg_pool_np(x)[0, 0, :, :, 0], [[3, 5], [13, 15]])
    np.testing.assert_array_equal(max_pool_np(x)[0, 0, :, :, 0], [[6, 8], [16, 18]])
    # same 2x2 stride 2 on 5x5: out 3x3, no padding in front, last row/col of size 1
    same = avg_pool_np(x, padding="same")[0, 0, :, :, 0]
    assert same.shape == (3, 3) and same[2, 2] == 24 and same[0, 2] == (4 + 9) / 2
    np.testing.assert_array_equal(global_avg_np(x)[0, 0], [12.0])
    s, _ = tandem_add_np([np.full((1, 2, 1), 0.5), np.ones((1, 2, 1))], scales=[1.0, 0.25])
    np.testing.assert_array_equal(s[0, :, 0], [0, 1])


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("pool, strides", [((2, 2), None), ((3, 3), (2, 2)), ((2, 3), (1, 2))])
def test_pooling_np_matches_tensorflow(padding, pool, strides):
    import tensorflow as tf

    x = np.random.default_rng(4).normal(size=(2, 3, 7, 6, 2)).astype(np.float32)
    flat = x.reshape(6, 7, 6, 2)   # float32: TF's max pooling (oneDNN) is exact there
    st = strides or pool
    avg = tf.nn.avg_pool2d(flat, pool, st, padding.upper()).numpy()
    mx = tf.nn.max_pool2d(flat, pool, st, padding.upper()).numpy()
    np.testing.assert_allclose(avg_pool_np(x, pool, strides, padding).reshape(avg.shape), avg, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(max_pool_np(x, pool, strides, padding).reshape(mx.shape), mx)


def test_encode_np_hand_computed():
    v = np.array([[-1.0, 0.0, 0.99, 1.0, 2.5, 7.0]])
    s = encode_np(v, 4, 1.0)
    np.testing.assert_array_equal(s.sum(axis=1)[0], [0, 0, 0, 1, 2, 4])
    np.testing.assert_array_equal(s[0, :, 4], [1, 1, 0, 0])
    s = encode_np(np.array([[1.9, 2.0]]), 3, theta=0.5)
    np.testing.assert_array_equal(s.sum(axis=1)[0], [3, 3])


def test_bn_fold_np_equals_batchnorm_of_linear():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4))
    kernel, bias = rng.normal(size=(4, 3)), rng.normal(size=3)
    gamma, beta = rng.uniform(0.5, 2, 3), rng.normal(size=3)
    mean, var, eps = rng.normal(size=3), rng.uniform(0.5, 2, 3), 1e-3
    bn = gamma * (x @ kernel + bias - mean) / np.sqrt(var + eps) + beta
    k, b = bn_fold_np(kernel, bias, gamma, beta, mean, var, eps)
    np.testing.assert_allclose(x @ k + b, bn, rtol=1e-12, atol=1e-12)


def test_tandem_layer_np_sums_to_free_potential_without_spiking():
    # With a huge threshold nothing spikes, so V(T) must equal V_f = W' c_in + b' (Eq. 4).
    rng = np.random.default_rng(2)
    op = {"kind": "conv", "strides": 2, "padding": "same"}
    s_in = (rng.random((3, 5, 6, 6, 2)) < 0.4).astype(float)
    kernel, bias = rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4)
    bn = dict(gamma=rng.uniform(0.5, 2, 4), beta=rng.normal(size=4),
              moving_mean=rng.normal(size=4), moving_variance=rng.uniform(0.5, 2, 4), eps=1e-3)
    for training in (False, True):
        k, b = folded_np(s_in, kernel, bias, op, bn, training)
        flat = s_in.reshape((15, 6, 6, 2))
        z = (linear_np(flat, k, op) + b / 5).reshape((3, 5, 3, 3, 4))
        vf = free_potential_np(s_in, kernel, bias, op, bn, training)
        np.testing.assert_allclose(z.sum(axis=1), vf, rtol=1e-10, atol=1e-10)
        s, _ = tandem_layer_np(s_in, kernel, bias, op, theta=1e9, bn=bn, training=training)
        assert s.sum() == 0
    # training statistics: BN output has zero mean and ~unit variance per channel
    vf = free_potential_np(s_in, kernel, bias, op, dict(bn, gamma=np.ones(4), beta=np.zeros(4)),
                           training=True)
    np.testing.assert_allclose(vf.mean(axis=(0, 1, 2)), 0.0, atol=1e-10)


# ----------------------------------------------------------------------------- Keras helpers
def layer_variables(layer) -> dict:
    """{short name: variable} of a built Keras layer (kernel, bias, gamma, beta, ...)."""
    out = {}
    for v in layer.weights:
        name = v.path.split("/")[-1] if hasattr(v, "path") else v.name.split(":")[0]
        out[name.split(":")[0]] = v
    return out


def set_layer_weights(layer, **arrays) -> None:
    """Assigns named weights (kernel=..., bias=..., gamma=...) to a built layer."""
    variables = layer_variables(layer)
    for name, value in arrays.items():
        assert name in variables, f"layer has no weight {name!r}: {sorted(variables)}"
        variables[name].assign(np.asarray(value, np.float32))


def random_bn(rng, units: int, scale: float = 1.0, eps: float = 1e-3) -> dict:
    """Random BN parameters; float32-representable so the reference sees what the layer sees."""
    f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731
    return dict(
        gamma=f32(rng.uniform(0.5, 1.5, units) * scale),
        beta=f32(rng.normal(0.3, 1.0, units) * scale),
        moving_mean=f32(rng.normal(0.0, 1.0, units)),
        moving_variance=f32(rng.uniform(0.5, 2.0, units)),
        eps=eps,
    )


def bn_weights(bn: dict) -> dict:
    return {k: bn[k] for k in ("gamma", "beta", "moving_mean", "moving_variance")}
