"""tk.ActivityLogger: TensorBoard scalars equal an independent SynOps count."""
import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

import tandem_keras as tk
from tandem_keras.synops import logger as callbacks


def _read_scalars(log_dir):
    scalars = {}
    for path in glob.glob(f"{log_dir}/activity/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return scalars


def test_activity_logger(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(6, name="enc_dense"),
        tk.SpikeEncoder(3, name="enc"),
        tk.TandemDense(4, name="hidden"),
        tk.SpikeCount(),
        keras.layers.Dense(2, name="out"),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, (16, 5)).astype("float32")
    y = rng.integers(0, 2, 16)
    logger = callbacks.ActivityLogger(str(tmp_path), data=(x[:8], y[:8]), every_n_epochs=2)
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[logger])
    scalars = _read_scalars(str(tmp_path))
    assert sorted(scalars["synops/total_snn"]) == [1, 3]  # epochs 2 and 4 (0-based 1, 3)

    # Independent reference on the final weights: spike trains from the layers' own
    # outputs, SynOps = sum of spikes x fan-out (enc -> 4 hidden units, hidden -> 2 outputs).
    probe = keras.Model(model.inputs[0], [model.get_layer("enc").output,
                                          model.get_layer("hidden").output])
    enc, hidden = (np.asarray(t) for t in probe(x[:8], training=False))
    expected = (enc.sum() * 4 + hidden.sum() * 2) / 8
    assert scalars["synops/total_snn"][3] == pytest.approx(expected, rel=1e-6)
    assert scalars["spike_count/hidden"][3] == pytest.approx(hidden.sum() / 8 / 4, rel=1e-6)
    assert scalars["firing_rate/enc"][3] == pytest.approx(enc.sum() / 8 / 6 / 3, rel=1e-6)
    # ANN MACs: 5*6 + 6*4 + 4*2 = 62.
    assert scalars["synops/ann"][3] == 62
    assert scalars["synops/ratio"][3] == pytest.approx(expected / 62, rel=1e-6)


def test_activity_logger_bad_input():
    with pytest.raises(ValueError, match="every_n_epochs"):
        callbacks.ActivityLogger("logs", data=np.ones((2, 3)), every_n_epochs=0)
    with pytest.raises(ValueError, match="non-empty batch"):
        callbacks.ActivityLogger("logs", data=np.ones((0, 3)))
