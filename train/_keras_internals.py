"""``train``'s only uses of private Keras attributes, in one place, with the reason.

``fit`` under ``MultiWorkerMirroredStrategy`` fails in Keras 3 (keras-team/keras#20585) in
two places that have no public switch; :func:`patch_for_multi_worker` works around both.
``tests/test_keras_internals.py`` checks each attribute against the pinned Keras version,
so that a Keras release that changes them fails there, in one place.
"""
from __future__ import annotations

import keras
import tensorflow as tf


def patch_for_multi_worker(model: keras.Model) -> None:
    """Lets ``model.fit`` run under ``MultiWorkerMirroredStrategy``.

    Call it inside ``strategy.scope()`` and run ``fit`` there too.

    1. ``fit`` pre-builds a distributed model by reducing a ``PerReplica`` data batch
       eagerly, which fails across workers. Without the recorded strategy (the private
       ``model._distribute_strategy``, which ``keras.Model`` sets to the scope's strategy),
       Keras builds at trace time instead and takes the strategy from the enclosing scope.
    2. Each step's metric values are scalars, which Keras reduces across workers with
       ``strategy.reduce("MEAN", v, axis=0)``, invalid for a scalar. The steps here return
       them with shape ``[1]`` (the instance's ``train_step`` / ``test_step``, which
       ``fit`` looks up on the instance); the reduction gives back the scalar mean. (The
       epoch logs read the metric variables, which are summed over all replicas.)
    """
    model._distribute_strategy = None

    def with_axis(step):
        def wrapped(data):
            return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

        return wrapped

    model.train_step = with_axis(model.train_step)
    model.test_step = with_axis(model.test_step)
