"""tk.conversion.Distiller: the loss against NumPy, and training through fit."""
import keras
import numpy as np
import pytest

import tandem_keras as tk


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_loss_equals_the_formula():
    rng = np.random.default_rng(0)
    teacher = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    student = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    d = tk.conversion.Distiller(student, teacher, alpha=0.3, temperature=2.5)
    x = rng.normal(size=(6, 5)).astype("float32")
    y = rng.integers(0, 4, 6)
    zs = np.asarray(student(x), np.float64)
    zt = np.asarray(teacher(x), np.float64)
    ce = -np.log(_softmax(zs)[np.arange(6), y])
    p, q = _softmax(zt / 2.5), _softmax(zs / 2.5)
    kd = np.sum(p * np.log(p / q), -1) * 2.5 ** 2
    expected = np.mean(0.7 * ce + 0.3 * kd)
    loss = float(d.compute_loss(x=x, y=y, y_pred=student(x)))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_fit_trains_the_student_only_and_refuses_bad_arguments():
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    student = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2), tk.TimeFlatten(),
                                tk.TandemDense(3, batch_norm=False), tk.SpikeCount(), keras.layers.Dense(3)])
    before = [w.copy() for w in teacher.get_weights()]
    d = tk.conversion.Distiller(student, teacher)
    d.compile("adam")
    rng = np.random.default_rng(1)
    d.fit(rng.uniform(0, 2, (16, 4)).astype("float32"), rng.integers(0, 3, 16), epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights()))
    with pytest.raises(ValueError, match="alpha"):
        tk.conversion.Distiller(student, teacher, alpha=1.5)
    with pytest.raises(ValueError, match="differ in shape"):
        tk.conversion.Distiller(student, keras.Sequential([keras.Input((4,)), keras.layers.Dense(5)]))
