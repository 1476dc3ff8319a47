"""`model.fit` with jit_compile on and off, with and without a two-CPU MirroredStrategy.

Reference for one SGD step: w - lr * grad, the gradient taken eagerly with a
GradientTape on an identical model (those gradients are checked against the coupled ANN
in test_gradients.py). The weights and inputs are dyadic rationals chosen so that every
membrane potential is exact in float32 in any summation order and never lands on the
threshold or on a kink of the surrogate: the spikes are then identical on every path
(eager, XLA, per replica), and only the float rounding of the gradients can differ.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tests.tandem_keras.test_layers import numpy_forward, small_model

T = 4
N = 8
LR = 0.05


def skip_unsupported(strategy, jit_compile):
    """XLA cannot compile a MirroredStrategy step whose replicas are logical CPUs of one
    host (TF known issue "tf.Variable on a different device"); a plain keras Dense
    model fails the same way, so this combination is not the library's to test."""
    if jit_compile and strategy.num_replicas_in_sync > 1:
        pytest.skip("jit_compile=True with MirroredStrategy over logical CPUs is unsupported by TF/XLA")


def bn_free_model():
    return keras.Sequential([
        keras.Input((4, 4, 1)),
        keras.layers.Conv2D(3, 2, padding="same"),
        tk.SpikeEncoder(T),
        tk.TandemConv2D(4, 2, strides=2, batch_norm=False),
        tk.TimeFlatten(),
        tk.TandemDense(5, batch_norm=False),
        tk.SpikeCount(),
        keras.layers.Dense(3),
    ])


def dyadic_weights(model, seed=0):
    """Kernels k/8; encoder-conv bias k/8 + 1/64 (so v is never an integer); tandem bias
    odd/64 (so b/T = odd/256 and no V(t) is ever an integer, no V_f is 0 or T)."""
    rng = np.random.default_rng(seed)
    weights = []
    for layer in model.layers:
        for w in layer.weights:
            name = w.path.split("/")[-1]
            if name == "kernel":
                weights.append(rng.integers(-6, 9, w.shape) / 8.0)
            elif isinstance(layer, keras.layers.Conv2D):
                weights.append(rng.integers(0, 8, w.shape) / 8.0 + 1.0 / 64)
            elif isinstance(layer, tk.TandemLayer):
                weights.append((2 * rng.integers(0, 16, w.shape) + 1) / 64.0)
            else:
                weights.append(rng.normal(size=w.shape))
    return [np.asarray(w, np.float32) for w in weights]


def batch(seed=1):
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 9, (N, 4, 4, 1)) / 4.0).astype(np.float32)
    y = rng.normal(size=(N, 3)).astype(np.float32)
    return x, y


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_step_equals_eager_sgd_step(strategy, jit_compile):
    skip_unsupported(strategy, jit_compile)
    x, y = batch()
    reference = bn_free_model()
    weights = dyadic_weights(reference)
    reference.set_weights(weights)
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, reference(x, training=True))
    grads = tape.gradient(loss, reference.trainable_weights)
    expected = [w.numpy() - LR * g.numpy() for w, g in zip(reference.trainable_weights, grads)]
    assert all(np.abs(g.numpy()).max() > 0 for g in grads)  # every layer learns

    with strategy.scope():
        model = bn_free_model()
        model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse", jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=N, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], float(loss), rtol=1e-5)
    for name, got, want in zip([w.path for w in model.trainable_weights],
                               model.trainable_weights, expected):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_fit_with_bn_then_inference_is_the_snn(strategy, jit_compile):
    """Training with fused BN under the strategy updates the moving statistics, and the
    trained model's inference equals the float64 NumPy SNN with its weights."""
    skip_unsupported(strategy, jit_compile)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 3, (32, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    with strategy.scope():
        model = small_model(t_steps=3)
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    for layer in model.layers:
        if isinstance(layer, tk.TandemLayer):
            mean = np.asarray(layer.moving_mean)
            assert np.isfinite(mean).all() and np.abs(mean).max() > 0
    out = np.asarray(model.predict(x, batch_size=32, verbose=0))
    expected, margin = numpy_forward(model, x, "tandem")
    clear = margin > 1e-4
    assert clear.mean() > 0.7
    np.testing.assert_allclose(out[clear], expected[clear], rtol=1e-4, atol=1e-4)
