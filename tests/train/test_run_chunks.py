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
