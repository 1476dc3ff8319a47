"""The training recipe shared by ``python -m train`` and ``bench.reproduce_cifar10``.

One place builds the model of a :class:`~train.config.TrainConfig` and compiles it (Adam,
cross-entropy on the logits, top-1 / top-k with ``tk.metrics``' tie rule) with the
learning-rate schedule of ``lr_schedule``: ``train.run`` calls :func:`compiled_model` with
the flags' configuration, the reproduction with each of its named budgets
(``bench.reproduce_cifar10.recipe_values``).

Example:
  >>> from train.config import TrainConfig
  >>> config = TrainConfig(model="digits", time_steps=2, learning_rate=1e-3, lr_step_epochs=2,
  ...                      epochs=4)
  >>> model = compiled_model(config, (8, 8, 1), 10, steps_per_epoch=3)
  >>> model.optimizer.learning_rate.numpy().round(6)  # the rate of the first update
  np.float32(0.001)
"""
from __future__ import annotations

from typing import Sequence

import keras

import models
from tandem_keras.metrics import SparseTopKAccuracy
from train.config import TrainConfig


def learning_rate(config: TrainConfig,
                  steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate of ``config.lr_schedule`` as a function of the optimizer step.

    ``step``: ``lr * factor ** floor(epoch / lr_step_epochs)``, ``epoch = step //
    steps_per_epoch`` (``factor``: ``config.lr_step_factor``); ``cosine``:
    ``lr * (1 + cos(pi * step / total_steps)) / 2``; ``constant``: ``lr``.

    Keras calls the schedule with the number of updates done so far (0 for the first
    update), and ``PiecewiseConstantDecay`` switches to the next rate when that step is
    *greater than* a boundary; the first update of epoch ``k * lr_step_epochs`` is step
    ``k * lr_step_epochs * steps_per_epoch``, so the boundaries are one less than that.

    Example:
      >>> config = TrainConfig(learning_rate=1.0, lr_schedule="step", lr_step_epochs=1,
      ...                      lr_step_factor=0.1, epochs=3)
      >>> schedule = learning_rate(config, steps_per_epoch=2)
      >>> [round(float(schedule(s)), 3) for s in range(6)]
      [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    """
    lr = config.learning_rate
    total = config.epochs * steps_per_epoch
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total)
    if config.lr_schedule == "step":
        every = config.lr_step_epochs * steps_per_epoch
        boundaries = [b - 1 for b in range(every, total, every)]
        if boundaries:
            rates = [lr * config.lr_step_factor**k for k in range(len(boundaries) + 1)]
            return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, rates)
    return lr


def build_model(config: TrainConfig, input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """``models.build(config.model, ...)`` with the configuration's window, decoding, mode,
    width divisor, dropout (``None``: the builder's) and name (``None``: the builder's)."""
    if config.model not in models.BUILDERS:
        models.build(config.model)  # raises the ValueError naming the known models
    optional = {"dropout": config.dropout, "name": config.model_name}
    return models.BUILDERS[config.model](
        input_shape=tuple(input_shape), num_classes=num_classes, time_steps=config.time_steps,
        decode=config.decode, mode=config.mode, width_divisor=config.width_divisor,
        **{k: v for k, v in optional.items() if v is not None})


def compile_model(model: keras.Model, config: TrainConfig, num_classes: int,
                  steps_per_epoch: int) -> keras.Model:
    """Compiles ``model`` with the recipe: Adam (:func:`learning_rate`, decoupled weight decay
    ``config.weight_decay`` or none; with ``config.ema_momentum`` > 0 an exponential moving
    average of the weights, ``w_avg <- m w_avg + (1 - m) w`` after every update, which ``fit``
    writes into the model when it ends), sparse cross-entropy on logits, top-1 and top-k
    (k = min(5, classes)) with ``tk.metrics``' tie rule (the same as ``python -m eval``)."""
    top_k = min(5, num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch),
                                        weight_decay=config.weight_decay or None,
                                        use_ema=config.ema_momentum > 0,
                                        ema_momentum=config.ema_momentum or 0.99),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[SparseTopKAccuracy(k=1, name="top1"),
                 SparseTopKAccuracy(k=top_k, name=f"top{top_k}")],
        jit_compile=config.jit_compile,
        run_eagerly=config.run_eagerly,
    )
    return model


def compiled_model(config: TrainConfig, input_shape: Sequence[int], num_classes: int,
                   steps_per_epoch: int) -> keras.Model:
    """:func:`build_model` then :func:`compile_model`; call inside ``strategy.scope()``."""
    return compile_model(build_model(config, input_shape, num_classes), config, num_classes,
                         steps_per_epoch)
