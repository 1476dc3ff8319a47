"""A trained ReLU ANN converted with ``tk.convert``, and fine-tuned with the tandem rule.

    python -m bench.convert_cifar10 --ann=RUN/export --name=cifarnet_w4 --step=zero_shot
    python -m bench.convert_cifar10 --ann=RUN/export --name=cifarnet_w4 --step=finetune \\
        --schedule=all --epochs=6 [--export_dir=DIR]

``--ann`` is a ``.keras`` file or the export directory of a ``--mode=ann`` run (its
``model.keras``); the data are the 45k/5k split ``python -m train`` makes of ``--dataset``.
``zero_shot``: the validation error of the ANN, then of the converted SNN (T = ``--time_steps``)
without calibration and calibrated at each ``--percentiles`` (``theta_l = P_p(a_l) / T`` from
``--calibration_batches`` training batches), with ``V(0) = 0`` and ``--initial_potential``
times theta, and ``tk.convert`` with its defaults (calibrated; its quantized ANN too);
``--negative_spikes`` gives the neurons negative spikes (``tk.neurons.IF(negative_spikes=True)``).
``finetune``: the converted, calibrated SNN trained with the tandem rule (Adam,
cosine from ``--learning_rate``, the recipe's augmentation), every layer at once
(``--schedule=all``; ``--quantized_epochs=K``: the first K epochs in quantized mode) or one at a
time (``progressive``: ``tk.conversion.ProgressiveTandem``); ``--steps_per_epoch`` shortens an
epoch. Each run appends a ``conversion`` record (wall and CPU seconds included) and prints its
table; ``--export_dir`` exports the fine-tuned SNN as ``python -m train`` does.
"""
from __future__ import annotations

import os
import time
from typing import Any

from bench import harness
from bench.harness import flags, keras, tk
from bench.tables import conversion_record_table

FLAGS = flags.FLAGS
flags.DEFINE_string("ann", None, "The trained ANN: a .keras file or an export directory.")
flags.DEFINE_string("name", None, "The network's name in the table (e.g. cifarnet_w4).")
flags.DEFINE_enum("step", "zero_shot", ["zero_shot", "finetune"], "What to measure.")
flags.DEFINE_string("dataset", "folder:/tmp/cifar/cifar10_jpeg/train", "As python -m train.")
flags.DEFINE_float("validation_split", 0.1, "As python -m train.")
flags.DEFINE_integer("time_steps", 4, "T of the SNN.")
flags.DEFINE_list("percentiles", ["99", "99.9", "99.99"], "zero_shot: calibration percentiles.")
flags.DEFINE_float("percentile", 99.9, "finetune: the calibration percentile.")
flags.DEFINE_float("initial_potential", 0.5, "V(0) as a fraction of theta (0: the paper's IF).")
flags.DEFINE_bool("negative_spikes", False, "Neurons with negative spikes (tk.neurons.IF(negative_spikes=True)).")
flags.DEFINE_integer("calibration_batches", 8, "Training batches (no augmentation) to calibrate on.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_enum("schedule", "all", ["all", "progressive"], "finetune: layers switched at once or one at a time.")
flags.DEFINE_integer("epochs", 4, "finetune: epochs.")
flags.DEFINE_integer("steps_per_epoch", 0, "finetune: steps per epoch (0: the whole split).")
flags.DEFINE_float("learning_rate", 1e-4, "finetune: initial Adam learning rate (cosine decay).")
flags.DEFINE_integer("quantized_epochs", 0, "finetune, all: the first epochs in quantized mode (QCFS-like ANN).")
flags.DEFINE_integer("patience", 1, "progressive: epochs without a better val top-1 before the next layer.")
flags.DEFINE_integer("layers_per_stage", 1, "progressive: spiking layers switched per stage.")
flags.DEFINE_integer("max_epochs_per_stage", 0, "progressive: at most this many epochs per stage (0: no limit).")
flags.DEFINE_integer("final_epochs", 0, "progressive: the last epochs train the whole SNN.")
flags.DEFINE_integer("seed", 0, "Shuffling and augmentation seed.")
flags.DEFINE_string("export_dir", "", "finetune: export the fine-tuned SNN here.")
flags.DEFINE_string("out", "", "Records file (default bench/results/records.jsonl).")


def convert(ann, calibration, percentile, v0):
    return tk.convert(ann, time_steps=FLAGS.time_steps, calibration_data=calibration,
                      percentile=percentile, calibration_batches=FLAGS.calibration_batches,
                      neuron=tk.neurons.IF(initial_potential=v0, negative_spikes=FLAGS.negative_spikes))


def zero_shot(ann, val, calibration) -> dict:
    rows = [{"method": "ann", "val_error": harness.val_error(ann, val)}]
    default = tk.convert(ann, time_steps=FLAGS.time_steps, calibration_data=calibration,
                         calibration_batches=FLAGS.calibration_batches)
    rows.append({"method": "default", "val_error": harness.val_error(default, val),
                 "quantized_error": harness.val_error(tk.with_mode(default, "quantized"), val)})
    print(f"tk.convert's defaults: {rows[-1]['val_error']:.2f}% (its quantized ANN "
          f"{rows[-1]['quantized_error']:.2f}%)", flush=True)
    spikes = {"negative_spikes": FLAGS.negative_spikes}
    for v0 in sorted({0.0, FLAGS.initial_potential}):
        rows.append({"method": "converted", "percentile": None, "initial_potential": v0, **spikes,
                     "val_error": harness.val_error(convert(ann, None, 99.9, v0), val)})
        for p in map(float, FLAGS.percentiles):
            rows.append({"method": "calibrated", "percentile": p, "initial_potential": v0, **spikes,
                         "val_error": harness.val_error(convert(ann, calibration, p, v0), val)})
        last = rows[-1]
        print(f"V(0)={v0:g} theta: calibrated p{last['percentile']:g} {last['val_error']:.2f}%", flush=True)
    return {"rows": rows, "ann_error": rows[0]["val_error"]}


class QuantizedFirst(keras.callbacks.Callback):
    """The first ``epochs`` in quantized mode, then tandem mode (functions rebuilt)."""

    def __init__(self, epochs: int, val) -> None:
        super().__init__()
        self.epochs, self.val = epochs, val
        self.quantized_error = self.snn_error = None

    def _mode(self, mode: str) -> None:
        tk.set_mode(self.model, mode)
        for make in ("make_train_function", "make_test_function", "make_predict_function"):
            getattr(self.model, make)(force=True)

    def on_train_begin(self, logs=None) -> None:
        self._mode("quantized")

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if epoch + 1 == self.epochs:
            self.quantized_error = harness.val_error(self.model, self.val)  # the quantized ANN
            self._mode("tandem")
            self.snn_error = harness.val_error(self.model, self.val)  # its SNN, before tandem training


def finetune(ann, source, val, calibration) -> dict:
    snn = convert(ann, calibration, FLAGS.percentile, FLAGS.initial_potential)
    start = harness.val_error(snn, val)
    steps = FLAGS.steps_per_epoch or source.num_train // FLAGS.batch_size
    train = harness.cosine_training(snn, source, FLAGS.learning_rate, FLAGS.epochs, steps,
                                    FLAGS.batch_size, FLAGS.seed)
    callbacks: list[Any] = []
    if FLAGS.quantized_epochs:
        if FLAGS.schedule != "all" or FLAGS.quantized_epochs >= FLAGS.epochs:
            harness.usage_error("--quantized_epochs needs --schedule=all and fewer than --epochs")
        callbacks.append(QuantizedFirst(FLAGS.quantized_epochs, val))
    if FLAGS.schedule == "progressive":
        callbacks.append(tk.conversion.ProgressiveTandem(
            monitor="val_top1", patience=FLAGS.patience, restore_best_weights=False,
            max_epochs_per_stage=FLAGS.max_epochs_per_stage or None, layers_per_stage=FLAGS.layers_per_stage,
            final_epochs=FLAGS.final_epochs, verbose=1))
    cpu, wall = time.process_time(), time.time()
    history = snn.fit(train, epochs=FLAGS.epochs, steps_per_epoch=steps, validation_data=val, callbacks=callbacks,
                      verbose=2).history
    cpu, wall = time.process_time() - cpu, time.time() - wall
    stage = tk.conversion.stage_of(snn)  # in spiking layers
    hybrid = harness.val_error(snn, val) if stage < len(tk.conversion.stages(snn)) else None
    figures = {"ann_error": harness.val_error(ann, val), "start_error": start,
               "val_error": harness.val_error(tk.conversion.set_stage(snn), val),  # the SNN
               "per_epoch": [{"epoch": i + 1, "val_error": 100.0 * (1.0 - history["val_top1"][i]),
                              "stage": history.get("progressive_stage", [None] * FLAGS.epochs)[i],
                              "mode": "quantized" if i < FLAGS.quantized_epochs else "tandem"}
                             for i in range(len(history["val_top1"]))],
               "train_wall_s": wall, "train_cpu_s": cpu, "steps": FLAGS.epochs * steps,
               "examples_seen": FLAGS.epochs * steps * FLAGS.batch_size,
               "stages": len(tk.conversion.stages(snn, FLAGS.layers_per_stage)), "final_stage": stage,
               "hybrid_error": hybrid}
    if FLAGS.quantized_epochs:
        figures.update(quantized_error=callbacks[0].quantized_error, snn_after_quantized=callbacks[0].snn_error)
    if FLAGS.export_dir:
        harness.save_trained(snn, source, export_dir=FLAGS.export_dir,
                             validation_split=FLAGS.validation_split,
                             converted_from=os.path.basename(os.path.normpath(FLAGS.ann)))
        figures["export_dir"] = FLAGS.export_dir
    return figures


def main(argv) -> None:
    del argv
    if not FLAGS.ann or not FLAGS.name:
        harness.usage_error("--ann and --name are required")
    ann = harness.trained_model(FLAGS.ann, "ann")
    source, val, calibration = harness.split_batches(FLAGS.dataset, FLAGS.validation_split,
                                                     FLAGS.batch_size)
    if FLAGS.step == "zero_shot":
        figures = zero_shot(ann, val, calibration)
    else:
        figures = finetune(ann, source, val, calibration)
    harness.finish("conversion", figures, conversion_record_table, FLAGS.out)


if __name__ == "__main__":
    harness.run(main)
