"""Pooling on spike trains (method §3): forward against the NumPy pooling of every time step,
the pooled current integrated exactly by the next tandem layer, gradients against the
coupled ANN (pooling of the counts), every mode, round trips, Keras's run_layer_test."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import testing

import tandem_keras as tk
from tests.tandem_keras.test_gradients import assert_close
from tests.tandem_keras.test_neurons_reference import (
    assert_spikes_match,
    avg_pool_np,
    bn_weights,
    global_avg_np,
    max_pool_np,
    random_bn,
    set_layer_weights,
    tandem_layer_np,
)

EPS = 1e-3
CONV_SAME = {"kind": "conv", "strides": 1, "padding": "same"}


def spikes(shape, rate=0.4, seed=0):
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.float32)


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool, strides", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_forward_equals_numpy_pooling_of_every_step(pool, strides, padding):
    x = spikes((3, 5, 7, 6, 2))
    pair = pool if isinstance(pool, tuple) else (pool, pool)
    step = None if strides is None else (strides if isinstance(strides, tuple) else (strides, strides))
    avg = np.asarray(tk.AveragePooling2D(pool, strides, padding)(x))
    np.testing.assert_allclose(avg, avg_pool_np(x, pair, step, padding), rtol=1e-6, atol=1e-7)
    mx = np.asarray(tk.MaxPooling2D(pool, strides, padding)(x))
    np.testing.assert_array_equal(mx, max_pool_np(x, pair, step, padding))
    assert set(np.unique(mx)) <= {0.0, 1.0}                    # an OR of spikes: spikes
    keras_max = keras.layers.TimeDistributed(keras.layers.MaxPooling2D(pool, strides, padding))
    np.testing.assert_array_equal(mx, np.asarray(keras_max(x)))
    assert tk.AveragePooling2D(pool, strides, padding).compute_output_shape(x.shape) == avg.shape


def test_global_average_pooling():
    x = spikes((2, 4, 5, 3, 6))
    np.testing.assert_allclose(np.asarray(tk.GlobalAveragePooling2D()(x)), global_avg_np(x), rtol=1e-6)
    kept = np.asarray(tk.GlobalAveragePooling2D(keepdims=True)(x))
    assert kept.shape == (2, 4, 1, 1, 6)


def test_pooled_current_is_integrated_exactly_by_the_next_layer():
    """W (P s(t)) is the composite linear map: the tandem layer after the pooling is the
    NumPy IF layer on the pooled train, and the pooled train passes its inference check."""
    rng = np.random.default_rng(1)
    x = spikes((4, 6, 8, 8, 3), seed=1)
    inputs = keras.Input((6, 8, 8, 3))
    conv = tk.TandemConv2D(4, 3, epsilon=EPS, name="after_pool")
    model = keras.Model(inputs, conv(tk.AveragePooling2D(2)(inputs)))
    kernel = rng.normal(0, 0.8, (3, 3, 3, 4)).astype(np.float32).astype(np.float64)
    bias = rng.normal(0.3, 0.5, 4).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 4, scale=2.0, eps=EPS)
    set_layer_weights(conv, kernel=kernel, bias=bias, **bn_weights(bn))
    out = model.predict(x, verbose=0)
    expected, margin = tandem_layer_np(avg_pool_np(x), kernel, bias, CONV_SAME, 1.0, bn, False)
    assert_spikes_match(out, expected, margin)
    assert 0.05 < expected.mean() < 0.95


def test_quantized_max_pooling_of_front_loaded_trains_is_the_max_count():
    counts = np.random.default_rng(2).integers(0, 5, (3, 4, 4, 2)).astype(np.float32)
    trains = np.asarray(tk.neurons.front_loaded_spikes(tf.constant(counts), 4))
    pooled = np.asarray(tk.MaxPooling2D(2, mode="quantized")(trains))
    np.testing.assert_array_equal(pooled.sum(axis=1),
                                  np.asarray(tf.nn.max_pool2d(counts, 2, 2, "VALID")))


def test_modes_ann_pools_the_activation_and_bptt_is_the_snn():
    x = spikes((2, 4, 6, 6, 3), seed=3)
    act = np.random.default_rng(3).uniform(0, 3, (2, 1, 6, 6, 3)).astype(np.float32)
    for cls, ref in ((tk.AveragePooling2D, avg_pool_np), (tk.MaxPooling2D, max_pool_np)):
        np.testing.assert_allclose(np.asarray(cls(2, mode="ann")(act)), ref(act), rtol=1e-6)
        for mode in ("quantized", "bptt"):
            np.testing.assert_allclose(np.asarray(cls(2, mode=mode)(x)), ref(x), rtol=1e-6)


def test_bad_input_named():
    with pytest.raises(ValueError, match=r"pool \(AveragePooling2D\) expects a spike train of shape "
                                         r"\[batch, time, height, width, channels\].*keras.layers."
                                         r"AveragePooling2D on spike counts"):
        tk.AveragePooling2D(2, name="pool")(np.zeros((2, 6, 6, 3), np.float32))
    with pytest.raises(ValueError, match="`pool_size` argument must be a tuple of 2 integers"):
        tk.MaxPooling2D(0)                       # Keras's own check
    with pytest.raises(ValueError, match=r"mp \(MaxPooling2D\) expects a spike train \(values 0/1\)"):
        tk.MaxPooling2D(2, name="mp")(np.full((1, 2, 4, 4, 1), 0.5, np.float32))


# ----------------------------------------------------------------------------- gradients
def _bn_train(u, gamma, beta):
    mean, var = tf.nn.moments(u, axes=[0, 1, 2])
    return gamma * (u - mean) / tf.sqrt(var + EPS) + beta


def test_average_pooling_gradient_is_the_coupled_ann():
    """AveragePooling2D -> TandemConv2D: the ANN is conv(avgpool(c_in)) with BN and the
    bounded ReLU; the gradient to every input step is the count's."""
    rng = np.random.default_rng(4)
    t_steps, theta = 4, 1.0
    x = spikes((6, t_steps, 8, 8, 2), 0.5, seed=4)
    pool, conv = tk.AveragePooling2D(2), tk.TandemConv2D(3, 3, epsilon=EPS)
    conv(pool(x))
    kernel = rng.normal(0, 0.6, (3, 3, 2, 3)).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 3, scale=2.0, eps=EPS)
    set_layer_weights(conv, kernel=kernel, bias=np.zeros(3), **bn_weights(bn))
    r = rng.normal(size=(6, t_steps, 4, 4, 3)).astype(np.float32)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        loss = tf.reduce_sum(conv(pool(x_t), training=True) * r)
    got = tape.gradient(loss, [conv.kernel, conv.gamma, conv.beta, x_t])

    c = tf.constant(x.sum(axis=1).astype(np.float64))
    w, g, b = (tf.Variable(v) for v in (kernel, bn["gamma"], bn["beta"]))
    with tf.GradientTape() as tape:
        tape.watch(c)
        vf = _bn_train(tf.nn.conv2d(tf.nn.avg_pool2d(c, 2, 2, "VALID"), w, 1, "SAME"), g, b)
        a = tf.clip_by_value(vf / theta, 0.0, float(t_steps))
        ref_loss = tf.reduce_sum(a * r.mean(axis=1))
    ref = tape.gradient(ref_loss, [w, g, b, c])
    assert np.abs(np.asarray(vf)).min() > 1e-4 and np.abs(np.asarray(vf) - t_steps).min() > 1e-4
    for name, actual, expected in zip(["kernel", "gamma", "beta"], got, ref):
        assert_close(np.asarray(actual), np.asarray(expected), name)
    assert_close(np.asarray(got[3]), np.broadcast_to(np.asarray(ref[3])[:, None], x.shape), "input")


def test_max_pooling_gradient_is_the_coupled_ann():
    """TandemConv2D -> MaxPooling2D: the ANN max-pools the layer's counts (its value the SNN
    count, its gradient the conv's coupled ANN), the rate gradient goes to the window's
    largest count (the first one on ties, as TensorFlow's max pooling)."""
    rng = np.random.default_rng(5)
    t_steps, theta = 4, 1.0
    x = spikes((6, t_steps, 8, 8, 2), 0.5, seed=5)
    conv, pool = tk.TandemConv2D(3, 3, epsilon=EPS), tk.MaxPooling2D(2)
    pool(conv(x))
    kernel = rng.normal(0, 0.6, (3, 3, 2, 3)).astype(np.float32).astype(np.float64)
    bn = random_bn(rng, 3, scale=2.0, eps=EPS)
    set_layer_weights(conv, kernel=kernel, bias=np.zeros(3), **bn_weights(bn))
    r = rng.normal(size=(6, t_steps, 4, 4, 3)).astype(np.float32)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        hidden = conv(x_t, training=True)
        loss = tf.reduce_sum(pool(hidden, training=True) * r)
    got = tape.gradient(loss, [conv.kernel, conv.gamma, conv.beta, x_t])
    c_snn = tf.constant(np.asarray(hidden).sum(axis=1).astype(np.float64))

    c = tf.constant(x.sum(axis=1).astype(np.float64))
    w, g, b = (tf.Variable(v) for v in (kernel, bn["gamma"], bn["beta"]))
    with tf.GradientTape() as tape:
        tape.watch(c)
        vf = _bn_train(tf.nn.conv2d(c, w, 1, "SAME"), g, b)
        a = tf.clip_by_value(vf / theta, 0.0, float(t_steps))
        counts = c_snn + (a - tf.stop_gradient(a))          # value: the SNN counts exactly
        ref_loss = tf.reduce_sum(tf.nn.max_pool2d(counts, 2, 2, "VALID") * r.mean(axis=1))
    ref = tape.gradient(ref_loss, [w, g, b, c])
    assert np.abs(np.asarray(vf)).min() > 1e-4 and np.abs(np.asarray(vf) - t_steps).min() > 1e-4
    for name, actual, expected in zip(["kernel", "gamma", "beta"], got, ref):
        assert_close(np.asarray(actual), np.asarray(expected), name)
    assert_close(np.asarray(got[3]), np.broadcast_to(np.asarray(ref[3])[:, None], x.shape), "input")


# ----------------------------------------------------------------------------- round trips
def assert_trains(model, x):
    """Every trainable weight gets a finite gradient, not all zero."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.isfinite(np.asarray(g)).all() for g in grads), model.name
    assert sum(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads) > len(grads) // 2


def pooled_model(mode="tandem"):
    return keras.Sequential([
        keras.Input((8, 8, 2)), keras.layers.Conv2D(4, 3, padding="same"),
        tk.SpikeEncoder(3, mode=mode), tk.TandemConv2D(4, 3, mode=mode),
        tk.MaxPooling2D(2, mode=mode), tk.TandemConv2D(6, 3, mode=mode),
        tk.AveragePooling2D(2, mode=mode), tk.TandemConv2D(6, 1, mode=mode),
        tk.GlobalAveragePooling2D(mode=mode), tk.TandemDense(5, mode=mode),
        tk.SpikeCount(), keras.layers.Dense(3)])


def test_keras_file_export_and_with_mode_round_trips(tmp_path):
    model = pooled_model()
    x = np.random.default_rng(6).uniform(0, 4, (3, 8, 8, 2)).astype(np.float32)
    model(x, training=True)                                     # BN moving statistics move
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0), expected)
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_array_equal(loaded.serve(x), expected)
    for mode in tk.MODES:
        copy = tk.with_mode(model, mode)
        assert {layer.mode for layer in copy.layers if hasattr(layer, "mode")} == {mode}
        assert_trains(copy, x)
    np.testing.assert_array_equal(tk.with_mode(tk.with_mode(model, "ann"), "tandem").predict(x, verbose=0),
                                  expected)


def test_keras_pooling_on_spike_counts_works_everywhere(tmp_path):
    """Keras's own GlobalAveragePooling2D after tk.SpikeCount() before an analog readout."""
    model = keras.Sequential([keras.Input((6, 6, 2)), tk.SpikeEncoder(3), tk.TandemConv2D(4, 3),
                              tk.SpikeCount(), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(7).uniform(0, 3, (4, 6, 6, 2)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(loaded.serve(x), expected, rtol=1e-6)
    for mode in tk.MODES:
        assert_trains(tk.with_mode(model, mode), x)


@pytest.mark.parametrize("cls", [tk.AveragePooling2D, tk.MaxPooling2D])
def test_mixed_bfloat16_pooling_exact(cls):
    x = spikes((2, 4, 6, 6, 3), seed=8)
    out = cls(2, dtype="mixed_bfloat16")(x)
    assert out.dtype == tf.bfloat16
    ref = avg_pool_np if cls is tk.AveragePooling2D else max_pool_np
    np.testing.assert_array_equal(tf.cast(out, tf.float32).numpy(), ref(x))   # quarters: exact


class LayerTest(testing.TestCase):
    def test_run_layer_test(self):
        x = spikes((2, 3, 6, 6, 4), seed=9)
        for cls, kwargs, shape in ((tk.AveragePooling2D, {"pool_size": 2}, (2, 3, 3, 3, 4)),
                                   (tk.MaxPooling2D, {"pool_size": 2, "padding": "same"}, (2, 3, 3, 3, 4)),
                                   (tk.GlobalAveragePooling2D, {}, (2, 3, 4))):
            self.run_layer_test(cls, init_kwargs=kwargs, input_data=x, expected_output_shape=shape,
                                expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
                                run_training_check=False)
