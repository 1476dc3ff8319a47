"""Under a two-CPU ``MirroredStrategy`` the replicas keep one set of BN moving statistics.

Without synchronization each replica updated its own copy from its half of the batch (up to
0.45 apart after 3 epochs of digits) and the export kept replica 0's. Reference: the same
training step on one device with the whole batch; the encoder BN's moving mean also against
NumPy's mean of the encoder convolution's output (``0.9 * 0 + 0.1 * mean``).
"""
import keras
import numpy as np
import tensorflow as tf

import models
from tests.conftest import mirrored_strategy

BATCH = 32


def _trained_one_step(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = models.build("digits", input_shape=(8, 8, 1), num_classes=10, time_steps=3,
                             dropout=0.0)
        model.compile(keras.optimizers.SGD(0.0),  # weights stay: only the statistics move
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 16, (BATCH, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, BATCH)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return model, x


def _copies(strategy, variable):
    return [np.asarray(c) for c in strategy.experimental_local_results(variable.value)]


def test_every_replica_has_the_single_device_statistics():
    strategy = mirrored_strategy()
    assert strategy.num_replicas_in_sync == 2
    mirrored, x = _trained_one_step(strategy)
    single, _ = _trained_one_step(tf.distribute.get_strategy())
    stats = [v for v in mirrored.non_trainable_variables if "moving_" in v.path]
    assert {v.path.split("/")[0] for v in stats} == {"encoder_bn", "tandem_conv1", "tandem_dense1"}
    for variable in stats:
        copies = _copies(strategy, variable)
        for copy in copies[1:]:
            np.testing.assert_array_equal(copy, copies[0], err_msg=variable.path)
    # The encoder BN and the first tandem layer see the same input on both paths (the
    # encoder's batch statistics are the global batch's): the moving mean is the global one.
    for layer in ("encoder_bn", "tandem_conv1"):
        np.testing.assert_allclose(np.asarray(mirrored.get_layer(layer).moving_mean),
                                   np.asarray(single.get_layer(layer).moving_mean),
                                   rtol=1e-4, atol=1e-5, err_msg=layer)
    conv = keras.Model(single.input, single.get_layer("encoder_conv").output)
    expected = 0.1 * np.asarray(conv(x), np.float64).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(_copies(strategy, mirrored.get_layer("encoder_bn").moving_mean)[1],
                               expected, rtol=1e-4, atol=1e-6)
