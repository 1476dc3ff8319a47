"""Issue 28's controlled study: one network trained one way, its validation error per epoch.

    python -m bench.accuracy_study --network=resnet20 --row=tandem --mode=tandem \\
        --initial_potential=0.5 --epochs=15
    python -m bench.accuracy_study --network=resnet20 --row=converted --init_from=RUN/export \\
        --epochs=6 --learning_rate=3e-4 [--distill=RUN/export]

Every row of the study trains with the same recipe (Adam, cosine decay from
``--learning_rate``, batch 64, the CIFAR crop and flip, seed 0) on the 45k/5k split of
``--dataset`` and records the validation top-1 error after every epoch, so that a network that
converges more slowly can be told from one that plateaus higher. A row is a network from
scratch in one mode (``ann``: the ReLU ANN; ``quantized``: the bounded quantized ANN,
``clip(floor(V/theta + v0), 0, T)``; ``tandem``; ``bptt``) with every neuron starting at
``V(0) = v0 theta`` (``--initial_potential``), or (``--init_from``) a trained ANN converted by
``tk.convert`` (thresholds at the ``--percentile`` of each layer's activation) and trained in
``--mode``. ``--distill=TEACHER`` adds knowledge distillation from a trained model's logits
(``tk.conversion.Distiller``). ``--wall_minutes`` sets the number of epochs from the
measured time of the first steps so that the row trains for that long (BPTT at the wall time
of another row). For a quantized row the SNN of the same weights (constrain-then-train) is
evaluated after every epoch too.

Each run appends one ``accuracy_study`` record; ``--save_dir`` saves the trained model there
(``model.keras``), ``--export_dir`` exports it as ``python -m train`` does.
"""
from __future__ import annotations

import time
from typing import Any

from bench import harness
from bench.harness import flags, keras, tk
from bench.tables import study_record_table
from train.callbacks import moving_average_in

FLAGS = flags.FLAGS
flags.DEFINE_string("network", "resnet20", "A builder of models (resnet20, vgg11, cifarnet, ...).")
flags.DEFINE_string("row", None, "The row's name in the study's table.")
flags.DEFINE_integer("width_divisor", 1, "The builder's width_divisor.")
flags.DEFINE_integer("time_steps", 4, "T.")
flags.DEFINE_enum("mode", "tandem", list(tk.MODES), "Training mode.")
flags.DEFINE_float("initial_potential", 0.5, "V(0) as a fraction of theta.")
flags.DEFINE_string("init_from", "", "A trained ANN (.keras or export directory) to convert.")
flags.DEFINE_float("rounding", None, "The neurons' rounding (tk.neurons.IF(rounding=...); default: "
                   "--initial_potential).")
flags.DEFINE_string("start_from", "", "A trained tandem model (.keras or export directory) to train further "
                    "in --mode, as it is.")
flags.DEFINE_bool("negative_spikes", False, "Neurons with negative spikes (tk.neurons.IF(negative_spikes=True); "
                  "tk.convert(negative_spikes=True) for --init_from and --start_from).")
flags.DEFINE_bool("trainable_scales", False, "TandemAdd input weights trained (tk.convert(trainable_scales=True)).")
flags.DEFINE_float("percentile", 99.9, "Conversion: the calibration percentile.")
flags.DEFINE_string("distill", "", "A trained model (.keras or export directory) to distill from.")
flags.DEFINE_float("alpha", 0.5, "Distillation: the weight of the teacher's term.")
flags.DEFINE_float("temperature", 4.0, "Distillation: the softmax temperature.")
flags.DEFINE_integer("epochs", 15, "Epochs (ignored with --wall_minutes).")
flags.DEFINE_float("wall_minutes", 0.0, "Train for about this long: epochs from the first steps' time.")
flags.DEFINE_integer("steps_per_epoch", 0, "Steps per epoch (0: the whole training split).")
flags.DEFINE_float("learning_rate", 1e-3, "Initial Adam learning rate (cosine decay).")
flags.DEFINE_float("ema_momentum", 0.0, "Train with an exponential moving average of the weights "
                   "(Adam(use_ema=True)); every epoch and the end evaluate the average (0: none).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_string("dataset", "folder:/tmp/cifar/cifar10_jpeg/train", "As python -m train.")
flags.DEFINE_integer("seed", 0, "Initialization, shuffling and augmentation seed.")
flags.DEFINE_string("save_dir", "", "Save the trained model here (model.keras).")
flags.DEFINE_string("export_dir", "", "Export the trained model here as python -m train does.")
flags.DEFINE_string("out", "", "Records file (default bench/results/records.jsonl).")


def _model(source, calibration) -> keras.Model:
    import models

    neuron = tk.neurons.IF(initial_potential=FLAGS.initial_potential, rounding=FLAGS.rounding,
                           negative_spikes=FLAGS.negative_spikes)
    if FLAGS.start_from:
        model = harness.trained_model(FLAGS.start_from, "start_from")
        if FLAGS.trainable_scales or FLAGS.negative_spikes:
            model = tk.convert(model, time_steps=FLAGS.time_steps, trainable_scales=FLAGS.trainable_scales,
                               negative_spikes=FLAGS.negative_spikes or None)
        return tk.with_mode(model, FLAGS.mode)
    if FLAGS.init_from:
        ann = harness.trained_model(FLAGS.init_from, "init_from")
        snn = tk.convert(ann, time_steps=FLAGS.time_steps, calibration_data=calibration,
                         percentile=FLAGS.percentile, neuron=neuron,
                         trainable_scales=FLAGS.trainable_scales)
        return snn if FLAGS.mode == "tandem" else tk.with_mode(snn, FLAGS.mode)
    return models.BUILDERS[FLAGS.network](
        input_shape=source.image_shape, num_classes=source.num_classes,
        time_steps=FLAGS.time_steps, mode=FLAGS.mode, width_divisor=FLAGS.width_divisor,
        neuron=neuron)


class _PerEpoch(keras.callbacks.Callback):
    def __init__(self, model: keras.Model, val) -> None:
        super().__init__()
        self.student, self.val, self.rows = model, val, []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.wall, self.cpu = time.time(), time.process_time()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        row = {"epoch": epoch + 1, "train_wall_s": time.time() - self.wall,
               "train_cpu_s": time.process_time() - self.cpu, "loss": float(logs["loss"])}
        with moving_average_in(self.model):   # the weights fit ends with
            row["val_error"] = harness.val_error(self.student, self.val)
            if FLAGS.mode == "quantized":   # its SNN, constrain-then-train
                row["snn_error"] = harness.val_error(tk.with_mode(self.student, "tandem"), self.val)
        self.rows.append(row)
        print(f"epoch {row['epoch']}: val {row['val_error']:.2f}%"
              + (f" (its SNN {row['snn_error']:.2f}%)" if "snn_error" in row else "")
              + f", {row['train_wall_s']:.0f} s", flush=True)


def _epochs_for(trainee: keras.Model, train, steps: int) -> tuple[int, float]:
    """Epochs that fit in ``--wall_minutes``, from the time of 10 steps after 3 warm-up steps."""
    iterator = iter(train)
    trainee.make_train_function()
    step = trainee.train_function
    for _ in range(3):
        step(iter([next(iterator)]))
    start = time.time()
    for _ in range(10):
        step(iter([next(iterator)]))
    seconds_per_step = (time.time() - start) / 10
    return max(1, int(FLAGS.wall_minutes * 60 / (seconds_per_step * steps))), seconds_per_step


def main(argv) -> None:
    del argv
    if not FLAGS.row:
        harness.usage_error("--row is required")
    from common import pipeline
    from train import recipe
    from train.config import TrainConfig

    keras.utils.set_random_seed(FLAGS.seed)
    source, val, calibration = harness.split_batches(FLAGS.dataset, 0.1, FLAGS.batch_size)
    model = trainee = _model(source, calibration)
    if FLAGS.distill:
        teacher = harness.trained_model(FLAGS.distill, "distill")
        trainee = tk.conversion.Distiller(model, teacher, alpha=FLAGS.alpha,
                                          temperature=FLAGS.temperature)
    steps = FLAGS.steps_per_epoch or source.num_train // FLAGS.batch_size
    epochs, seconds_per_step = FLAGS.epochs, None
    if FLAGS.wall_minutes:
        probe = TrainConfig(learning_rate=FLAGS.learning_rate, lr_schedule="constant", epochs=1)
        recipe.compile_model(trainee, probe, source.num_classes, steps)
        warm = pipeline.train_batches(source, batch_size=FLAGS.batch_size, seed=FLAGS.seed + 1,
                                      start_epoch=0, epochs=1, augment="cifar")
        epochs, seconds_per_step = _epochs_for(trainee, warm, steps)
        model.set_weights(_model(source, calibration).get_weights())   # untrained again
    train = harness.cosine_training(trainee, source, FLAGS.learning_rate, epochs, steps,
                                    FLAGS.batch_size, FLAGS.seed, FLAGS.ema_momentum)
    start = harness.val_error(model, val)
    per_epoch = _PerEpoch(model, val)
    wall, cpu = time.time(), time.process_time()
    trainee.fit(train, epochs=epochs, steps_per_epoch=steps, callbacks=[per_epoch], verbose=0)
    wall, cpu = time.time() - wall, time.process_time() - cpu
    figures = {"network": model.name, "start_error": start,
               "val_error": per_epoch.rows[-1]["val_error"], "per_epoch": per_epoch.rows,
               "epochs": epochs, "steps": epochs * steps, "train_wall_s": wall, "train_cpu_s": cpu,
               "seconds_per_step_probe": seconds_per_step,
               "modes": {mode: harness.val_error(tk.with_mode(model, mode), val)
                         for mode in ("tandem", "quantized", "ann") if mode != FLAGS.mode}}
    harness.save_trained(model, source, FLAGS.save_dir, FLAGS.export_dir, dataset=FLAGS.dataset,
                         validation_split=0.1)
    harness.finish("accuracy_study", figures, study_record_table, FLAGS.out)


if __name__ == "__main__":
    harness.run(main)
