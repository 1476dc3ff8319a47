"""The training recipe shared by ``python -m train`` and ``bench.reproduce_cifar10``.

One place builds the model of a configuration and compiles it (Adam, cross-entropy on the
logits, top-1 / top-k with ``tk.metrics``' tie rule) with the learning-rate schedule of
``lr_schedule``: ``train.run`` calls :func:`compiled_model` with the flags, the reproduction
with each of its named budgets (``bench.reproduce_cifar10.BUDGETS``).

A configuration is any object with the attributes of ``train.flags`` that are used here
(``model``, ``time_steps``, ``decode``, ``mode``, ``dropout``, ``learning_rate``,
``lr_schedule``, ``lr_step_epochs``, ``lr_step_factor``, ``epochs``, ``weight_decay``,
``jit_compile``); ``width_divisor``, ``run_eagerly`` and ``model_name`` are optional.

Example:
  >>> from types import SimpleNamespace
  >>> config = SimpleNamespace(model="digits", time_steps=2, decode="membrane", mode="tandem",
  ...     dropout=None, learning_rate=1e-3, lr_schedule="step", lr_step_epochs=2,
  ...     lr_step_factor=0.1, epochs=4, weight_decay=0.0, jit_compile=False)
  >>> model = compiled_model(config, (8, 8, 1), 10, steps_per_epoch=3)
  >>> model.optimizer.learning_rate.numpy().round(6)  # the rate of the first update
  np.float32(0.001)
"""
from __future__ import annotations

from typing import Any, Sequence

import keras

import models
from tandem_keras.metrics import SparseTopKAccuracy


def learning_rate(values: Any, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate of ``values.lr_schedule`` as a function of the optimizer step.

    ``step``: ``lr * factor ** floor(epoch / lr_step_epochs)``, ``epoch = step //
    steps_per_epoch`` (``factor``: ``values.lr_step_factor``, default 0.1); ``cosine``:
    ``lr * (1 + cos(pi * step / total_steps)) / 2``; ``constant``: ``lr``.

    Keras calls the schedule with the number of updates done so far (0 for the first
    update), and ``PiecewiseConstantDecay`` switches to the next rate when that step is
    *greater than* a boundary; the first update of epoch ``k * lr_step_epochs`` is step
    ``k * lr_step_epochs * steps_per_epoch``, so the boundaries are one less than that.

    Example:
      >>> from types import SimpleNamespace
      >>> v = SimpleNamespace(learning_rate=1.0, lr_schedule="step", lr_step_epochs=1,
      ...                     lr_step_factor=0.1, epochs=3)
      >>> schedule = learning_rate(v, steps_per_epoch=2)
      >>> [round(float(schedule(s)), 3) for s in range(6)]
      [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    """
    lr = values.learning_rate
    total = values.epochs * steps_per_epoch
    if values.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total)
    if values.lr_schedule == "step":
        every = values.lr_step_epochs * steps_per_epoch
        boundaries = [b - 1 for b in range(every, total, every)]
        if boundaries:
            factor = getattr(values, "lr_step_factor", 0.1)
            rates = [lr * factor**k for k in range(len(boundaries) + 1)]
            return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, rates)
    return lr


def build_model(values: Any, input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """``models.build(values.model, ...)`` with the configuration's window, decoding, mode,
    dropout (``None``: the builder's) and ``width_divisor`` (if the configuration has one)."""
    extra: dict[str, Any] = {}
    if getattr(values, "dropout", None) is not None:
        extra["dropout"] = values.dropout
    if getattr(values, "width_divisor", None) not in (None, 1):
        extra["width_divisor"] = values.width_divisor
    if getattr(values, "model_name", None):
        extra["name"] = values.model_name
    if values.model not in models.BUILDERS:
        models.build(values.model)  # raises the ValueError naming the known models
    return models.BUILDERS[values.model](
        input_shape=tuple(input_shape), num_classes=num_classes, time_steps=values.time_steps,
        decode=values.decode, mode=values.mode, **extra)


def compile_model(model: keras.Model, values: Any, num_classes: int,
                  steps_per_epoch: int) -> keras.Model:
    """Compiles ``model`` with the recipe: Adam (:func:`learning_rate`, decoupled weight decay
    ``values.weight_decay`` or none), sparse cross-entropy on logits, top-1 and top-k
    (k = min(5, classes)) with ``tk.metrics``' tie rule (the same as ``python -m eval``)."""
    top_k = min(5, num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(values, steps_per_epoch),
                                        weight_decay=getattr(values, "weight_decay", 0.0) or None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[SparseTopKAccuracy(k=1, name="top1"),
                 SparseTopKAccuracy(k=top_k, name=f"top{top_k}")],
        jit_compile=getattr(values, "jit_compile", False),
        run_eagerly=getattr(values, "run_eagerly", False),
    )
    return model


def compiled_model(values: Any, input_shape: Sequence[int], num_classes: int,
                   steps_per_epoch: int) -> keras.Model:
    """:func:`build_model` then :func:`compile_model`; call inside ``strategy.scope()``."""
    return compile_model(build_model(values, input_shape, num_classes), values, num_classes,
                         steps_per_epoch)
