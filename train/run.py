"""One training run: strategy, data, model, optimizer, callbacks, ``fit``, export.

``run(config)`` takes a :class:`~train.config.TrainConfig` (``python -m train`` makes it
from its flags) and returns the trained model. The model directory (``train.rundir``) is
locked for the run and receives:

- ``config.json``: the configuration, checked when the run resumes; ``flags.txt``: the
  same as flag lines, for ``--flagfile``;
- ``backup/``: weights and optimizer state after every epoch (``train.backup``);
  rerunning with the same ``--model_dir`` resumes from the newest readable backup;
- ``logs/``: TensorBoard: loss, top-1, top-5 (``train/``, ``validation/``), and per layer
  the average spike count, firing rate and SynOps on a fixed batch
  (``activity/``, ``tandem_keras.ActivityLogger``);
- ``history.csv``: one row of metrics per epoch (appended on resume, from the backup's epoch).

In a multi-worker cluster only the chief writes these; the other workers keep their own
backup and logs under ``workers/<task>/``.

``fit`` runs :data:`EPOCHS_PER_FIT` epochs at a time, so that the input pipeline (one
shuffled order per epoch, ``common.pipeline``) is built for those epochs only: a long run
starts at once. With ``ema_momentum`` the optimizer keeps a moving average of the weights:
training continues from the trained weights across the ``fit`` calls, the validation figures
of every epoch are those of the trained weights, and the export holds the average. A NaN or
infinite loss or weight stops training with ``train.callbacks.TrainingDiverged`` before the
diverged epoch is backed up or logged; nothing is exported.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import keras
import tensorflow as tf
from absl import logging

from tandem_keras import ActivityLogger
from common import datasets, pipeline
from common.console import progress_verbosity
from train import backup, recipe, rundir
from train import callbacks as train_callbacks
from train._keras_internals import patch_for_multi_worker
from train.config import TrainConfig
from train.distribute import make_strategy, worker_role
from train.export import export, export_dir_problem
from train.flags import FlagError

#: Epochs per ``fit`` call (and per input pipeline built at once).
EPOCHS_PER_FIT = 50


def compiled_model(config: TrainConfig, source: datasets.Source, steps_per_epoch: int) -> keras.Model:
    """The model of ``--model`` for ``source``, compiled with the recipe of ``train.recipe``
    (Adam with ``--lr_schedule``, cross-entropy, top-1/top-5; top-5 becomes top-k for fewer
    than 5 classes). Call inside ``strategy.scope()``.
    """
    if config.init_from:
        from train.init_from import converted_model  # noqa: PLC0415
        return recipe.compile_model(converted_model(config, source), config, source.num_classes,
                                    steps_per_epoch)
    try:
        model = recipe.build_model(config, source.image_shape, source.num_classes)
    except ValueError as e:  # e.g. 3-channel normalization, 1-channel images
        problem = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FlagError("model", config.model,
                        f"does not fit --dataset={config.dataset} with images of shape "
                        f"{tuple(source.image_shape)}: {problem}") from None
    return recipe.compile_model(model, config, source.num_classes, steps_per_epoch)


def _activity_callback(log_dir: str, source: datasets.Source, batch_size: int) -> ActivityLogger:
    """Per-layer average spike counts and SynOps in TensorBoard, on one fixed batch."""
    split = "validation" if source.num_validation else "train"
    images, _ = next(iter(pipeline.eval_batches(source, split, batch_size=min(batch_size, 64))))
    return ActivityLogger(log_dir=log_dir, data=images)


def run(config: TrainConfig, restart: bool = False) -> keras.Model:
    """Trains ``config.model`` on ``config.dataset`` as configured; returns the model.

    ``restart`` deletes the state of the run in ``config.model_dir`` first (``--restart``).

    Raises:
      FlagError: a value that turns out to be unusable (empty folder, batch size not
        divisible by the replicas, batch larger than the training split, a model that does
        not fit the dataset's images).
      rundir.RunDirError: ``--model_dir`` is in use by another run, holds a run with other
        fixed values, or a backup that cannot be read (``--restart``).
      TrainingDiverged: the loss or a weight became NaN or infinite; the backup of the last
        good epoch is kept and nothing is exported.
    """
    # The strategy first: multi-worker collectives must be configured before TF runs anything.
    strategy = make_strategy(config.strategy, config.tpu)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise FlagError("batch_size", config.batch_size,
                        f"not divisible by the {replicas} replicas of --strategy={config.strategy}")
    is_chief, task = worker_role(strategy)
    with rundir.locked(config.model_dir) if is_chief else contextlib.nullcontext():
        return _run(config, restart, strategy, is_chief, task)


def _restored(model: keras.Model, backup_dir: str, config: TrainConfig, lr) -> int:
    """Restores the newest readable backup into ``model``; returns its epochs (0: none)."""
    try:
        epochs, path = backup.restore(model, backup_dir)
    except backup.BackupError as e:
        raise rundir.RunDirError(f"--model_dir={config.model_dir}: {e}; --restart to start "
                                 "afresh, or another --model_dir") from None
    if path and epochs >= config.epochs:
        logging.info("the backup %s holds %d epochs (--epochs=%d): nothing to train", path,
                     epochs, config.epochs)
    elif path:
        logging.info("resuming from epoch %d/%d (restored from %s)", epochs, config.epochs, path)
    if path and isinstance(lr, float):  # the backup holds the recorded rate; the flag's applies
        model.optimizer.learning_rate = lr
    return epochs


def _run(config: TrainConfig, restart: bool, strategy: tf.distribute.Strategy, is_chief: bool,
         task: str) -> keras.Model:
    export_dir = config.export_dir or os.path.join(config.model_dir, "export")
    work_dir = config.model_dir if is_chief else os.path.join(config.model_dir, "workers", task)
    backup_dir = os.path.join(work_dir, "backup")
    if is_chief:  # refuse a model_dir of another run, or outputs that cannot be written, first
        rundir.prepare(config, restart=restart)
        problem = export_dir_problem(export_dir)
        if problem:
            raise FlagError("export_dir", export_dir, f"{problem}; export into a new or empty "
                                                      "directory, or move them away")
    elif restart:
        rundir.clear(work_dir)
    problem = backup.write_problem(backup_dir)
    if problem:
        raise rundir.RunDirError(f"--model_dir={config.model_dir}: {problem}; the backups of "
                                 "every epoch go there: make it writable, or use another --model_dir")

    try:
        source = datasets.load(config.dataset, data_dir=config.data_dir,
                               validation_split=config.validation_split, image_size=config.image_size,
                               skip_bad_images=config.skip_bad_images)
    except datasets.DatasetError as e:
        value = getattr(config, e.flag) or "(TFDS's default)"
        raise FlagError(e.flag, value, str(e)) from None
    if config.batch_size > source.num_train:
        raise FlagError("batch_size", config.batch_size,
                        f"larger than the {source.num_train} training examples")
    steps_per_epoch = source.num_train // config.batch_size

    os.makedirs(work_dir, exist_ok=True)
    log_dir = os.path.join(work_dir, "logs")
    lr = recipe.learning_rate(config, steps_per_epoch)

    with strategy.scope():
        model = compiled_model(config, source, steps_per_epoch)
        start_epoch = _restored(model, backup_dir, config, lr)
    if is_chief:  # the run is accepted: its (new) configuration is the directory's
        rundir.record(config)
    rundir.trim_history(os.path.join(work_dir, rundir.HISTORY_FILE), start_epoch)
    augment = None if config.augment == "auto" else config.augment
    val_ds = (pipeline.eval_batches(source, "validation", batch_size=config.batch_size)
              if source.num_validation else None)

    verbose = progress_verbosity() if is_chief else 0
    trained = train_callbacks.TrainedWeights()
    callbacks = [
        # First: a NaN loss or weight stops fit before any later callback saves or logs it.
        train_callbacks.StopOnDivergence(backup_dir),
        keras.callbacks.TensorBoard(log_dir=log_dir),
        *([_activity_callback(log_dir, source, config.batch_size)] if is_chief else []),
        keras.callbacks.CSVLogger(os.path.join(work_dir, rundir.HISTORY_FILE), append=True),
        train_callbacks.EpochSeeds(),
        # An epoch is backed up once everything else has recorded it (history.csv) ...
        backup.Backup(backup_dir),
        # ... and its line says that it is.
        *([] if verbose else [train_callbacks.EpochSummary(config.epochs)]),
        *([trained] if config.ema_momentum else []),
    ]
    logging.info("training %s on %s: %d train / %d validation examples, %d steps of %d "
                 "(%d per replica x %d replicas) per epoch, epochs %d..%d",
                 f"{config.init_from} (converted)" if config.init_from else config.model,
                 config.dataset, source.num_train, source.num_validation,
                 steps_per_epoch, config.batch_size, config.batch_size // strategy.num_replicas_in_sync,
                 strategy.num_replicas_in_sync, start_epoch + 1, config.epochs)
    with strategy.scope():
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            patch_for_multi_worker(model)
        for first in range(start_epoch, config.epochs, EPOCHS_PER_FIT):
            last = min(first + EPOCHS_PER_FIT, config.epochs)
            train_ds = pipeline.train_batches(source, batch_size=config.batch_size,
                                              seed=config.seed, start_epoch=first, epochs=last,
                                              augment=augment)
            model.fit(train_ds, initial_epoch=first, epochs=last, steps_per_epoch=steps_per_epoch,
                      validation_data=val_ds, callbacks=callbacks,
                      shuffle=False,  # the pipeline shuffles
                      verbose=verbose)
            if config.ema_momentum and last < config.epochs:
                trained.restore()   # fit ended by writing the average over the trained weights
        if config.ema_momentum:   # also when a finished run's backup was all there was to train
            model.optimizer.finalize_variable_values(model.trainable_weights)

    export_mode = config.export_mode if config.export_mode != config.mode else None
    training = {"dataset": config.dataset, "validation_split": config.validation_split,
                "split_seed": datasets.SPLIT_SEED, "image_size": config.image_size,
                "num_train": source.num_train, "num_validation": source.num_validation,
                "epochs": max(start_epoch, config.epochs), "seed": config.seed}
    if is_chief:
        export(model, export_dir, export_mode, training=training, source=source)
        logging.info("exported the SavedModel and %s to %s", "model.keras", export_dir)
    else:  # every worker takes part in saving; only the chief's copy is kept
        scratch = tempfile.mkdtemp(prefix=f"export_{task}_")
        export(model, scratch, export_mode, training=training, source=source)
        shutil.rmtree(scratch, ignore_errors=True)
    return model
