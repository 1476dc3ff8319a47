"""``python -m train --init_from=PATH``: a tandem run that starts from a trained ANN.

The ANN (a ``.keras`` file, or the export directory of a ``--mode=ann`` run and its
``model.keras``) is converted by :func:`tandem_keras.convert` at ``--time_steps``, with its
weights (method §10): thresholds calibrated at the 99.9th percentile of each layer's ANN
activation over :data:`CALIBRATION_BATCHES` training batches of 64 (no augmentation), and
every neuron :data:`tandem_keras.conversion.DEFAULT_NEURON` (counts that round, method §10, and
negative spikes, method §3.6),
also for an ANN of tandem_keras layers whose own neuron floors. The model is then trained in
``--mode`` like any other. On
resume the ANN is converted again and the backup's weights replace the converted ones.
"""
from __future__ import annotations

import keras

import tandem_keras as tk
from common import pipeline
from train.config import TrainConfig
from train.flags import FlagError, _init_from_file

CALIBRATION_BATCHES = 8


def converted_model(config: TrainConfig, source) -> keras.Model:
    """The tandem model of ``config.init_from`` for ``source`` in ``config.mode``.

    Raises:
      FlagError: the file is not a Keras model, does not take the dataset's images or
        classes, or has a layer ``tk.convert`` refuses (one line naming it).
    """
    path = _init_from_file(config.init_from)
    if path is None:
        raise FlagError("init_from", config.init_from, "is not a .keras file or a directory holding model.keras")
    try:
        ann = keras.models.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - any reason a file is not a Keras model
        raise FlagError("init_from", config.init_from,
                        f"cannot be loaded as a Keras model ({str(error).strip().splitlines()[0]})") from None
    shape, classes = tuple(ann.input_shape[1:]), ann.output_shape[-1]
    if shape != tuple(source.image_shape) or classes != source.num_classes:
        raise FlagError("init_from", config.init_from,
                        f"takes images of shape {shape} into {classes} classes; --dataset="
                        f"{config.dataset} has {tuple(source.image_shape)} and {source.num_classes}")
    calibration = pipeline.eval_batches(source, "train", batch_size=64)
    try:
        snn = tk.convert(ann, time_steps=config.time_steps, calibration_data=calibration,
                         calibration_batches=CALIBRATION_BATCHES,
                         neuron=tk.conversion.DEFAULT_NEURON)
    except ValueError as error:
        raise FlagError("init_from", config.init_from, str(error)) from None
    return snn if config.mode == "tandem" else tk.with_mode(snn, config.mode)
