"""Tandem versions of Keras's linear layers (``class TandemX(TandemLayer, keras.layers.X)``):
TandemConv1D (sequences, causal padding) and TandemSeparableConv2D against float64 NumPy
references (method §3), their gradients against the coupled ANN written with TensorFlow's
own ops, Keras's layer test, and Keras's own argument checks and output shapes.

References: ``tests/tandem_keras/test_neurons_reference.py`` (neurons, BN folding) and the
convolutions below (loops over the kernel taps, TensorFlow's padding conventions).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

import tandem_keras as tk
from tests.tandem_keras.test_neurons_reference import assert_spikes_match, conv2d_np, neuron_np
from tests.tandem_keras.test_coupling import depthwise_np

EPS = 1e-3


def conv1d_np(x, kernel, strides=1, padding="same", dilation=1):
    """x [N, L, C], kernel [k, C, F] -> [N, L', F]: TensorFlow's cross-correlation; "causal"
    pads the start with (k - 1) d zeros, "same" pads total // 2 before."""
    x = np.asarray(x, np.float64)
    k = kernel.shape[0]
    span = (k - 1) * dilation + 1
    n = x.shape[1]
    if padding == "causal":
        x = np.pad(x, ((0, 0), (span - 1, 0), (0, 0)))
        out_len = -(-n // strides)
    elif padding == "same":
        out_len = -(-n // strides)
        total = max((out_len - 1) * strides + span - n, 0)
        x = np.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))
    else:
        out_len = -(-(n - span + 1) // strides)
    out = np.zeros((x.shape[0], out_len, kernel.shape[-1]))
    for i in range(out_len):
        for tap in range(k):
            out[:, i] += x[:, i * strides + tap * dilation] @ kernel[tap]
    return out


def separable_np(x, depthwise, pointwise, strides=1, padding="same"):
    """The depthwise convolution, then the 1x1 pointwise one: [N, H, W, C] -> [N, H', W', F]."""
    return conv2d_np(depthwise_np(x, depthwise, strides, padding), pointwise, 1, "valid")


def _random_bn(rng, channels):
    return {"gamma": rng.uniform(0.5, 2.0, channels), "beta": rng.uniform(0.2, 0.8, channels),
            "moving_mean": rng.normal(0.5, 0.5, channels),
            "moving_variance": rng.uniform(0.5, 2.0, channels)}


def _f32(a):
    return np.asarray(a, np.float32).astype(np.float64)


CASES = {
    "conv1d_causal": (lambda: tk.TandemConv1D(4, 3, padding="causal", epsilon=EPS),
                      (3, 5, 12, 2), lambda x, k: conv1d_np(x, k[0], 1, "causal")),
    "conv1d_causal_dilated": (lambda: tk.TandemConv1D(3, 2, padding="causal", dilation_rate=3,
                                                      neuron=tk.neurons.LIF(0.8), epsilon=EPS),
                              (3, 4, 12, 2), lambda x, k: conv1d_np(x, k[0], 1, "causal", 3)),
    "conv1d_same_stride2": (lambda: tk.TandemConv1D(4, 3, strides=2, epsilon=EPS),
                            (3, 5, 11, 2), lambda x, k: conv1d_np(x, k[0], 2, "same")),
    "conv1d_valid": (lambda: tk.TandemConv1D(3, 4, padding="valid", epsilon=EPS),
                     (3, 5, 11, 2), lambda x, k: conv1d_np(x, k[0], 1, "valid")),
    "separable_same": (lambda: tk.TandemSeparableConv2D(5, 3, depth_multiplier=2, epsilon=EPS),
                       (3, 4, 7, 7, 3), lambda x, k: separable_np(x, k[0], k[1], 1, "same")),
    "separable_valid_stride2": (lambda: tk.TandemSeparableConv2D(4, 3, strides=2, padding="valid",
                                                                 epsilon=EPS),
                                (3, 4, 8, 8, 2), lambda x, k: separable_np(x, k[0], k[1], 2, "valid")),
}


def _weights(layer, rng, channels):
    kernels = [_f32(rng.normal(0, 0.7, w.shape)) for w in layer.weights[:len(layer.weights) - 5]]
    bias = _f32(rng.normal(0.2, 0.5, channels))
    bn = {k: _f32(v) for k, v in _random_bn(rng, channels).items()}
    layer.set_weights(kernels + [bias, bn["gamma"], bn["beta"], bn["moving_mean"], bn["moving_variance"]])
    return kernels, bias, bn


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_equals_numpy_spike_for_spike(name):
    """Inference: z(t) = (W x s_in(t)) g + b'/T, the neuron over the T steps (method §3)."""
    make, shape, linear = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name))
    layer = make()
    x = (rng.random(shape) < 0.4).astype(np.float32)
    out_shape = layer.compute_output_shape(shape)
    layer(x)
    kernels, bias, bn = _weights(layer, rng, out_shape[-1])
    out = np.asarray(layer(x))
    assert out.shape == out_shape
    g = bn["gamma"] / np.sqrt(bn["moving_variance"] + EPS)
    folded_bias = (bias - bn["moving_mean"]) * g + bn["beta"]
    n, t = shape[:2]
    z = linear(x.reshape((n * t,) + shape[2:]), kernels) * g + folded_bias / t
    beta = getattr(layer.neuron, "beta", 1.0)
    expected, margin = neuron_np(z.reshape((n, t) + z.shape[1:]), 1.0, beta)
    assert_spikes_match(out, expected, margin)
    assert 0.05 < expected.mean() < 0.95
    kernel, b = layer.folded_weights()           # the scale folded into the last kernel
    last = kernel[-1] if isinstance(kernel, tuple) else kernel
    np.testing.assert_allclose(np.asarray(last), kernels[-1] * g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(b), folded_bias, rtol=1e-5, atol=1e-6)


def test_causal_output_step_reads_no_later_input():
    """A spike at sequence step i changes outputs at steps >= i only (causal padding)."""
    layer = tk.TandemConv1D(3, 3, padding="causal", neuron=None, batch_norm=False, use_bias=False)
    x = np.zeros((1, 2, 9, 2), np.float32)
    base = np.asarray(layer(x))
    x[0, :, 5, 1] = 1.0
    changed = np.abs(np.asarray(layer(x)) - base).sum(axis=(0, 1, 3)) > 0
    assert not changed[:5].any() and changed[5:8].any()


@pytest.mark.parametrize("name", ["conv1d_causal", "separable_same"])
def test_gradients_are_the_coupled_ann(name):
    """Training: grad of every kernel, gamma, beta and the input from the ANN
    a = clip(BN(L(c_in) + b) / theta, 0, T) with the batch statistics, read as a rate."""
    make, shape, _ = CASES[name]
    rng = np.random.default_rng(7)
    layer = make()
    x = (rng.random(shape) < 0.5).astype(np.float32)
    out_shape = layer.compute_output_shape(shape)
    layer(x)
    kernels, bias, bn = _weights(layer, rng, out_shape[-1])
    r = rng.normal(size=out_shape).astype(np.float32)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        loss = tf.reduce_sum(layer(x_t, training=True) * r)
    got = tape.gradient(loss, layer.trainable_weights + [x_t])
    c = tf.constant(x.sum(axis=1).astype(np.float64))
    ws = [tf.Variable(k) for k in kernels]
    b, g, beta = (tf.Variable(v) for v in (bias, bn["gamma"], bn["beta"]))
    t_steps = shape[1]
    with tf.GradientTape() as tape:
        tape.watch(c)
        if name.startswith("conv1d"):
            u = tf.nn.conv1d(tf.pad(c, [[0, 0], [2, 0], [0, 0]]), ws[0], 1, "VALID")
        else:
            u = tf.nn.separable_conv2d(c, ws[0], ws[1], [1, 1, 1, 1], "SAME")
        u = u + b
        axes = list(range(len(u.shape) - 1))
        mean, var = tf.nn.moments(u, axes=axes)
        vf = g * (u - mean) / tf.sqrt(var + EPS) + beta
        ref_loss = tf.reduce_sum(tf.clip_by_value(vf, 0.0, float(t_steps)) * r.mean(axis=1))
    ref = tape.gradient(ref_loss, ws + [b, g, beta, c])
    assert np.abs(np.asarray(vf)).min() > 1e-4 and np.abs(np.asarray(vf) - t_steps).min() > 1e-4
    for actual, expected in zip(got[:-1], ref[:-1]):
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(np.asarray(got[-1]),
                               np.broadcast_to(np.asarray(ref[-1])[:, None], x.shape), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("tandem_class, keras_class", [
    (tk.TandemConv1D, keras.layers.Conv1D), (tk.TandemConv2D, keras.layers.Conv2D),
    (tk.TandemDepthwiseConv2D, keras.layers.DepthwiseConv2D),
    (tk.TandemSeparableConv2D, keras.layers.SeparableConv2D), (tk.TandemDense, keras.layers.Dense)])
def test_keras_class_does_the_arguments_and_the_output_shape(tandem_class, keras_class):
    """The tandem layer is its Keras layer: the same arguments (and Keras's checks of them),
    the same weights, and Keras's per-step output shape with the time axis kept."""
    assert issubclass(tandem_class, keras_class) and issubclass(tandem_class, tk.TandemLayer)
    if keras_class is keras.layers.Dense:
        args, step = (3,), (2, 6)
    elif keras_class is keras.layers.DepthwiseConv2D:
        args, step = (3,), (2, 7, 7, 2)
    elif keras_class is keras.layers.Conv1D:
        args, step = (3, 3), (2, 9, 2)
    else:
        args, step = (3, 3), (2, 7, 7, 2)
    kwargs = {} if keras_class is keras.layers.Dense else {"strides": 2, "padding": "valid"}
    tandem, plain = tandem_class(*args, **kwargs), keras_class(*args, **kwargs)
    assert set(plain.get_config()) <= set(tandem.get_config())
    assert {k: v for k, v in tandem.get_config().items() if k in plain.get_config() and k != "name"} == {
        k: v for k, v in plain.get_config().items() if k != "name"}
    train = (step[0], 4) + step[1:]
    assert tandem.compute_output_shape(train) == (step[0], 4) + tuple(plain.compute_output_shape(step)[1:])
    tandem(np.zeros(train, np.float32))
    plain(np.zeros(step, np.float32))
    assert [w.name for w in tandem.weights][:len(plain.weights)] == [w.name for w in plain.weights]
    assert [w.shape for w in tandem.weights][:len(plain.weights)] == [w.shape for w in plain.weights]
    with pytest.raises(ValueError, match="kernel_size|units"):     # Keras's own check
        tandem_class(*(0 for _ in args))


def test_tandem_arguments_are_keyword_only_and_activation_is_the_neuron():
    conv = tk.TandemConv2D(4, 3, 2, "valid")            # Keras's positional arguments
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding) == (4, (3, 3), (2, 2), "valid")
    assert tk.TandemConv2D(4, 3).padding == "same"      # the tandem layers' default
    with pytest.raises(ValueError, match="activation='relu' is not supported"):
        tk.TandemDense(3, activation="relu")
    with pytest.raises(ValueError, match="data_format='channels_last'"):
        tk.TandemConv1D(3, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="groups=1"):
        tk.TandemConv2D(4, 3, groups=2)


class Conv1DLayerTest(testing.TestCase):
    def test_run_layer_test(self):
        x = (np.random.default_rng(5).random((2, 3, 10, 4)) < 0.5).astype(np.float32)
        self.run_layer_test(tk.TandemConv1D, init_kwargs={"filters": 5, "kernel_size": 3, "padding": "causal"},
                            input_data=x, expected_output_shape=(2, 3, 10, 5),
                            expected_num_trainable_weights=4, expected_num_non_trainable_weights=2)


class SeparableLayerTest(testing.TestCase):
    def test_run_layer_test(self):
        x = (np.random.default_rng(6).random((2, 3, 6, 6, 4)) < 0.5).astype(np.float32)
        self.run_layer_test(tk.TandemSeparableConv2D,
                            init_kwargs={"filters": 5, "kernel_size": 3, "depth_multiplier": 2},
                            input_data=x, expected_output_shape=(2, 3, 6, 6, 5),
                            expected_num_trainable_weights=5, expected_num_non_trainable_weights=2)
