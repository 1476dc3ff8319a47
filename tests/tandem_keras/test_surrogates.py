"""Surrogates as serializable objects: aliases, a user's own surrogate in the gradient
(against the analytic coupled-ANN gradient), .keras and SavedModel round trips."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tandem_keras import surrogates


@keras.saving.register_keras_serializable(package="test_surrogates")
class Scaled(surrogates.Surrogate):
    """a = k * V_f / theta everywhere (a user's surrogate with a config)."""

    def __init__(self, k=1.0):
        self.k = float(k)

    def derivative(self, v_f, threshold, time_steps):
        return tf.fill(tf.shape(v_f), self.k / threshold)

    def get_config(self):
        return {"k": self.k}


def test_aliases_and_bad_identifiers():
    assert isinstance(surrogates.get("bounded_relu"), surrogates.BoundedReLU)
    assert isinstance(surrogates.get("relu"), surrogates.ReLU)
    assert tk.TandemDense(3, surrogate="relu").get_config()["surrogate"] == "relu"
    with pytest.raises(ValueError, match=r"TandemDense: unknown surrogate 'sigmoid'"):
        tk.TandemDense(3, surrogate="sigmoid")
    with pytest.raises(ValueError, match="surrogate must be"):
        surrogates.get(3.0)


def _grad_wrt_kernel(layer, x):
    with tf.GradientTape() as tape:
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.reduce_sum(y, axis=1) * tf.range(1.0, 5.0))
    return tape.gradient(loss, layer.kernel)


@pytest.mark.parametrize("surrogate,mask", [
    ("bounded_relu", lambda v, T: (v > 0) & (v < T)),
    ("relu", lambda v, T: v > 0),
    (Scaled(2.5), lambda v, T: np.full_like(v, 2.5)),
])
def test_gradient_is_the_surrogate_derivative(surrogate, mask):
    T, theta = 3, 1.0
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(6, T, 5)) < 0.5).astype("float32")
    layer = tk.TandemDense(4, batch_norm=False, use_bias=False, surrogate=surrogate,
                           threshold=theta)
    layer.build(x.shape)
    kernel = rng.normal(size=(5, 4)).astype("float32") * 2
    layer.kernel.assign(kernel)
    c_in = x.sum(axis=1)
    v_f = c_in @ kernel
    # d loss / d s(t) = weight of the unit for every t; rate gradient = that weight.
    upstream = np.tile(np.arange(1.0, 5.0), (6, 1)) * mask(v_f, T * theta) / theta
    expected = c_in.T @ upstream
    np.testing.assert_allclose(_grad_wrt_kernel(layer, x), expected, rtol=1e-5, atol=1e-5)


def test_user_surrogate_round_trips_through_keras_file_and_exports(tmp_path):
    model = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2),
                              tk.TandemDense(3, surrogate=Scaled(0.5), name="fc"),
                              tk.SpikeCount()])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("fc").surrogate == Scaled(0.5)
    x = np.random.default_rng(1).uniform(0, 3, (5, 4)).astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    model.export(str(tmp_path / "saved"), verbose=False)
    restored = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_array_equal(np.asarray(restored.serve(x)), np.asarray(model(x)))
