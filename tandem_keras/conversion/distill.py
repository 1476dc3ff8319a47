"""Knowledge distillation from a trained model (the ANN an SNN was converted from).

:class:`Distiller` trains a student (a tandem SNN) on the labels and on a teacher's softened
logits (Hinton et al. 2015), the loss per example::

    L = (1 - alpha) CE(y, z_s) + alpha tau^2 KL(softmax(z_t / tau) || softmax(z_s / tau))

with ``z_s`` the student's logits, ``z_t`` the teacher's (no gradient), ``tau`` the
temperature. The teacher runs in inference mode on the same (augmented) batch. The gradient
of the second term with respect to ``z_s`` is ``alpha tau (softmax(z_s/tau) - softmax(z_t/tau))``;
the student's own backward pass (the tandem rule) takes it from there.

Example:
    >>> import keras, numpy as np, tandem_keras as tk
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> student = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2), tk.SpikeCount(),
    ...                             keras.layers.Dense(3)])
    >>> d = tk.conversion.Distiller(student, teacher, alpha=0.5, temperature=2.0)
    >>> d.compile("adam")
    >>> _ = d.fit(np.ones((8, 4), "float32"), np.zeros(8, "int32"), epochs=1, verbose=0)
    >>> d(np.ones((2, 4), "float32")).shape     # the student's logits
    TensorShape([2, 3])
"""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


class Distiller(keras.Model):
    """``student`` trained with the labels and ``teacher``'s logits (see the module).

    Compile it as the student would be (its ``loss`` argument is not used: the loss is the
    one above; metrics apply to the student's logits); ``fit``, ``evaluate`` and ``predict``
    run the student. Save or export ``distiller.student``.

    Args:
      student: the model trained (its logits are the output).
      teacher: a trained model with the same input and number of logits (not trained).
      alpha: weight of the teacher's term, in ``[0, 1]``.
      temperature: ``tau > 0``.
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, alpha: float = 0.5,
                 temperature: float = 4.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Distiller: alpha must be in [0, 1], got {alpha!r}.")
        if not temperature > 0:
            raise ValueError(f"Distiller: temperature must be > 0, got {temperature!r}.")
        if tuple(student.output_shape[1:]) != tuple(teacher.output_shape[1:]):
            raise ValueError(f"Distiller: the student's logits {student.output_shape} and the "
                             f"teacher's {teacher.output_shape} differ in shape.")
        self.student, self.teacher = student, teacher
        self.alpha, self.temperature = float(alpha), float(temperature)
        teacher.trainable = False

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits = tf.cast(y_pred, tf.float32)
        ce = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        tau = self.temperature
        target = tf.nn.softmax(tf.stop_gradient(tf.cast(self.teacher(x, training=False), tf.float32)) / tau)
        kd = keras.losses.kl_divergence(target, tf.nn.softmax(logits / tau)) * tau * tau
        loss = (1.0 - self.alpha) * ce + self.alpha * kd
        if sample_weight is not None:
            loss = loss * tf.cast(sample_weight, loss.dtype)
        return tf.reduce_mean(loss)
