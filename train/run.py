"""One training run: strategy, data, model, optimizer, callbacks, ``fit``, export.

``run(values)`` takes ``absl.flags.FLAGS`` (or any object with the same attributes, see
``train.flags``) and returns the trained model. The model directory receives:

- ``flags.txt``: the flags of the run (one ``--name=value`` a line, re-usable with
  ``--flagfile``);
- ``config.json``: the flags that make the run, checked when it resumes (``train.rundir``);
- ``backup/``: ``keras.callbacks.BackupAndRestore`` state (weights, optimizer state, epoch)
  written at every epoch end; rerunning with the same ``--model_dir`` resumes from it;
- ``logs/``: TensorBoard: loss, top-1, top-5 (``train/``, ``validation/``), and per layer
  the average spike count, firing rate and SynOps on a fixed batch
  (``activity/``, ``tandem_keras.ActivityLogger``);
- ``history.csv``: one row of metrics per epoch (appended on resume).

In a multi-worker cluster only the chief writes these; the other workers keep their own
backup and logs under ``workers/<task>/``.

A NaN or infinite loss or weight stops training with :class:`TrainingDiverged` before the
diverged epoch is backed up or logged; nothing is exported.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from tandem_keras import ActivityLogger
from train import callbacks as train_callbacks
from train import data, pipeline, recipe, rundir
from train.callbacks import TrainingDiverged
from train.console import progress_verbosity
from train.distribute import make_strategy, patch_for_multi_worker, worker_role
from train.export import export
from train.flags import FlagError
from train.recipe import learning_rate  # noqa: F401  (re-exported: train.run.learning_rate)


def _flags_text(values: Any) -> str:
    if hasattr(values, "flags_into_string"):
        return values.flags_into_string()
    return "".join(f"--{k}={v}\n" for k, v in sorted(vars(values).items()))


def compiled_model(values: Any, source: data.Source, steps_per_epoch: int) -> keras.Model:
    """The model of ``--model`` for ``source``, compiled with the recipe of ``train.recipe``
    (Adam with ``--lr_schedule``, cross-entropy, top-1/top-5; top-5 becomes top-k for fewer
    than 5 classes). Call inside ``strategy.scope()``.
    """
    try:
        model = recipe.build_model(values, source.image_shape, source.num_classes)
    except ValueError as e:  # e.g. 3-channel normalization, 1-channel images
        problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FlagError("model", values.model,
                        f"does not fit --dataset={values.dataset} with images of shape "
                        f"{tuple(source.image_shape)}: {problem}") from None
    return recipe.compile_model(model, values, source.num_classes, steps_per_epoch)


def _activity_callback(log_dir: str, source: data.Source, batch_size: int) -> ActivityLogger:
    """Per-layer average spike counts and SynOps in TensorBoard, on one fixed batch."""
    split = "validation" if source.num_validation else "train"
    images, _ = next(iter(pipeline.eval_batches(source, split, batch_size=min(batch_size, 64))))
    return ActivityLogger(log_dir=log_dir, data=images)


def run(values: Any) -> keras.Model:
    """Trains ``values.model`` on ``values.dataset`` as the flags say; returns the model.

    Raises:
      FlagError: a flag value that turns out to be unusable (empty folder, batch size not
        divisible by the replicas, batch larger than the training split, a model that does
        not fit the dataset's images).
      rundir.RunDirError: ``--model_dir`` holds a run with other flags (``--restart``).
      TrainingDiverged: the loss or a weight became NaN or infinite; the backup of the last
        good epoch is kept and nothing is exported.
    """
    # The strategy first: multi-worker collectives must be configured before TF runs anything.
    strategy = make_strategy(values.strategy, values.tpu)
    keras.utils.set_random_seed(values.seed)
    if values.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(values.mixed_precision)
    replicas = strategy.num_replicas_in_sync
    if values.batch_size % replicas:
        raise FlagError("batch_size", values.batch_size,
                        f"not divisible by the {replicas} replicas of --strategy={values.strategy}")
    is_chief, task = worker_role(strategy)
    if is_chief:  # refuse a model_dir of another run before loading any data
        rundir.prepare(values, restart=getattr(values, "restart", False))
    elif getattr(values, "restart", False):
        rundir.clear(os.path.join(values.model_dir, "workers", task))

    try:
        source = data.load(values.dataset, data_dir=values.data_dir,
                           validation_split=values.validation_split, image_size=values.image_size,
                           skip_bad_images=getattr(values, "skip_bad_images", False))
    except data.DatasetError as e:
        raise FlagError("dataset", values.dataset, str(e)) from None
    if values.batch_size > source.num_train:
        raise FlagError("batch_size", values.batch_size,
                        f"larger than the {source.num_train} training examples")
    steps_per_epoch = source.num_train // values.batch_size

    work_dir = values.model_dir if is_chief else os.path.join(values.model_dir, "workers", task)
    os.makedirs(work_dir, exist_ok=True)
    if is_chief:
        with open(os.path.join(work_dir, "flags.txt"), "w", encoding="utf-8") as f:
            f.write(_flags_text(values))
        rundir.record(values)
    backup_dir = os.path.join(work_dir, "backup")
    log_dir = os.path.join(work_dir, "logs")

    with strategy.scope():
        model = compiled_model(values, source, steps_per_epoch)

    start_epoch = min(train_callbacks.resume_epoch(backup_dir), values.epochs)
    augment = None if values.augment == "auto" else values.augment
    # A finished run restarted with the same --model_dir trains no more: fit only restores.
    train_ds = pipeline.train_batches(source, batch_size=values.batch_size, seed=values.seed,
                                      start_epoch=min(start_epoch, values.epochs - 1),
                                      epochs=values.epochs,
                                      augment=augment)
    val_ds = (pipeline.eval_batches(source, "validation", batch_size=values.batch_size)
              if source.num_validation else None)

    verbose = progress_verbosity() if is_chief else 0
    callbacks = [
        # First: a NaN loss or weight stops fit before any later callback saves or logs it.
        train_callbacks.StopOnDivergence(backup_dir),
        # The backup is restored before, and written before, anything else runs.
        keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True, delete_checkpoint=False),
        train_callbacks.SetLearningRate(learning_rate(values, steps_per_epoch)),
        keras.callbacks.TensorBoard(log_dir=log_dir),
        *([_activity_callback(log_dir, source, values.batch_size)] if is_chief else []),
        keras.callbacks.CSVLogger(os.path.join(work_dir, "history.csv"), append=True),
        train_callbacks.EpochSeeds(),
        train_callbacks.EpochSummary(values.epochs, per_epoch=not verbose),
    ]
    logging.info("training %s on %s: %d train / %d validation examples, %d steps of %d "
                 "(%d per replica x %d replicas) per epoch, epochs %d..%d",
                 values.model, values.dataset, source.num_train, source.num_validation,
                 steps_per_epoch, values.batch_size, values.batch_size // replicas, replicas,
                 start_epoch + 1, values.epochs)
    with strategy.scope():
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            patch_for_multi_worker(model)
        model.fit(train_ds, epochs=values.epochs, steps_per_epoch=steps_per_epoch,
                  validation_data=val_ds, callbacks=callbacks,
                  shuffle=False,  # the pipeline shuffles
                  verbose=verbose)

    export_mode = values.export_mode if values.export_mode != values.mode else None
    export_dir = values.export_dir or os.path.join(values.model_dir, "export")
    training = {"dataset": values.dataset, "validation_split": values.validation_split,
                "split_seed": getattr(data, "SPLIT_SEED", getattr(data, "_SPLIT_SEED", None)),
                "image_size": values.image_size, "num_train": source.num_train,
                "num_validation": source.num_validation, "epochs": values.epochs,
                "seed": values.seed}
    if is_chief:
        export(model, export_dir, export_mode, training=training, source=source)
        logging.info("exported the SavedModel and %s to %s", "model.keras", export_dir)
    else:  # every worker takes part in saving; only the chief's copy is kept
        scratch = tempfile.mkdtemp(prefix=f"export_{task}_")
        export(model, scratch, export_mode, training=training, source=source)
        shutil.rmtree(scratch, ignore_errors=True)
    return model
