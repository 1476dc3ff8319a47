"""``train.run`` fits a few epochs at a time (``EPOCHS_PER_FIT``) so that a long run starts
at once: the batches and the run's records are those of one ``fit`` over all epochs.

Reference for the data: ``common.pipeline.train_batches`` over all epochs at once (every
epoch's order is a function of the seed and the epoch only).
"""
import csv
import logging
import os

import numpy as np
import pytest
from absl import logging as absl_logging

from common import datasets, pipeline
from train import run
from train.config import TrainConfig


def test_epochs_built_in_pieces_are_the_batches_of_all_epochs():
    source = datasets.load("digits")
    kwargs = dict(batch_size=256, seed=5, augment="cifar")
    whole = list(pipeline.train_batches(source, start_epoch=0, epochs=3, **kwargs))
    pieces = [*pipeline.train_batches(source, start_epoch=0, epochs=2, **kwargs),
              *pipeline.train_batches(source, start_epoch=2, epochs=3, **kwargs)]
    assert len(whole) == len(pieces) == 3 * (source.num_train // 256)
    for (xa, ya), (xb, yb) in zip(whole, pieces):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())


@pytest.mark.slow
def test_a_run_in_pieces_records_every_epoch_once(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "EPOCHS_PER_FIT", 2)
    model_dir = str(tmp_path / "m")
    config = TrainConfig(model="digits", dataset="digits", time_steps=2, batch_size=256,
                         epochs=3, lr_schedule="constant", model_dir=model_dir)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = absl_logging.get_absl_logger()
    logger.addHandler(handler)
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        model = run.run(config)
    finally:
        absl_logging.set_verbosity(verbosity)
        logger.removeHandler(handler)
    with open(os.path.join(model_dir, "history.csv"), newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1", "2"]
    summaries = [r.getMessage() for r in records if r.getMessage().startswith("epoch ")]
    assert [s.split(":")[0] for s in summaries] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert int(model.optimizer.iterations.numpy()) == 3 * (1293 // 256)
    assert sorted(os.listdir(os.path.join(model_dir, "backup"))) == ["epoch_2.weights.h5",
                                                                      "epoch_3.weights.h5"]


@pytest.mark.slow
def test_ema_run_in_pieces_trains_as_one_fit_and_exports_the_average(tmp_path, monkeypatch):
    """With --ema_momentum, fit ends by writing the average over the weights; a run in pieces
    must still continue from the trained weights (its export is the one-fit run's, bit for
    bit), and the export is the optimizer's average, not the trained weights of the last
    backup, also when a finished run's backup is all there is to export."""
    import dataclasses

    import keras

    from train import backup

    def exported(path):
        return keras.models.load_model(os.path.join(path, "model.keras"), compile=False).get_weights()

    config = TrainConfig(model="digits", dataset="digits", time_steps=2, batch_size=256, epochs=3,
                         learning_rate=3e-3, lr_schedule="constant", ema_momentum=0.5,
                         deterministic=True)
    run.run(dataclasses.replace(config, model_dir=str(tmp_path / "one")))
    monkeypatch.setattr(run, "EPOCHS_PER_FIT", 1)
    run.run(dataclasses.replace(config, model_dir=str(tmp_path / "pieces")))
    one = exported(tmp_path / "one" / "export")
    for a, b in zip(one, exported(tmp_path / "pieces" / "export")):
        np.testing.assert_array_equal(a, b)

    source = datasets.load("digits")
    last = run.compiled_model(config, source, steps_per_epoch=source.num_train // 256)
    assert backup.restore(last, str(tmp_path / "pieces" / "backup"))[0] == 3
    trained = {id(w): w.numpy() for w in last.trainable_weights}
    average = [a.numpy() for a in last.optimizer._model_variables_moving_average]
    by_name = dict(zip((w.path for w in last.weights), one))
    assert any(not np.allclose(trained[id(w)], a) for w, a in zip(last.trainable_weights, average))
    for w, a in zip(last.trainable_weights, average):
        np.testing.assert_array_equal(by_name[w.path], a)

    run.run(dataclasses.replace(config, model_dir=str(tmp_path / "pieces"),
                                export_dir=str(tmp_path / "again")))   # nothing left to train
    for a, b in zip(one, exported(tmp_path / "again")):
        np.testing.assert_array_equal(a, b)
