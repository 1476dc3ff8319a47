"""Commits a converted-and-fine-tuned SNN (or the ANN it came from) as an export, with a record.

    python -m bench.record_converted --step=copy --source=/tmp/run/export --to=bench/models/NAME
    python -m eval --saved_model=bench/models/NAME --dataset=folder:... --split=validation \\
        --output_json=/tmp/NAME_eval.json
    python -m bench.record_converted --step=record --name=NAME --to=bench/models/NAME \\
        --eval_json=/tmp/NAME_eval.json --ann_config=RUN/config.json [--finetune_export=/tmp/run/export]

``copy`` exports the model of ``SOURCE/model.keras`` again (``train.export``), uncompiled, so
that ``model.keras`` holds no optimizer state, with the dataset named by its folder's identity;
the export's training metadata is kept. ``record`` appends a ``trained_model`` record (the
``trained_models`` table of RESULTS.md): the ``python -m eval`` figures of the committed
export, its size, the ANN's recipe (``--ann_config``, the run's ``config.json``) and, for a
converted SNN, the ``conversion`` fine-tuning record whose export was ``--finetune_export``
(its command, wall time and examples seen); for an ANN, the command, wall time and commit of
the ``trained_model`` record of the same ``--name`` (``bench.record_training``), if any.
"""
from __future__ import annotations

import json
import os

from bench import _common, records
from bench._common import flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("step", "copy", ["copy", "record"], "What to do.")
flags.DEFINE_string("source", None, "copy: the export directory (with model.keras) to commit.")
flags.DEFINE_string("to", None, "The committed export directory (bench/models/NAME).")
flags.DEFINE_string("converted_from", "", "copy: the name of the ANN a converted SNN came from.")
flags.DEFINE_string("name", None, "record: the row's name.")
flags.DEFINE_string("eval_json", None, "record: python -m eval --output_json of the committed export.")
flags.DEFINE_string("ann_config", None, "record: config.json of the ANN's python -m train run.")
flags.DEFINE_string("finetune_export", "", "record: the export_dir of the conversion record (a converted SNN).")
flags.DEFINE_string("note", "", "record: a note stored with the record.")
flags.DEFINE_string("out", "", "Records file (default bench/results/records.jsonl).")

_KEEP = ("examples", "top1_error", "top5_error", "time_steps", "synops_snn", "synops_ann", "synops_ratio",
         "synops_ratio_with_encoder", "energy_snn_joules", "energy_ann_joules", "device", "dataset",
         "split", "validation_split")


def record() -> None:
    with open(FLAGS.eval_json) as f:
        report = json.load(f)
    if os.path.realpath(report["saved_model"]) != os.path.realpath(FLAGS.to):
        _common.usage_error(f"--eval_json evaluated {report['saved_model']}, not {FLAGS.to}")
    with open(FLAGS.ann_config) as f:
        config = json.load(f)
    figures = {k: report[k] for k in _KEEP if k in report}
    figures.update(saved_model=FLAGS.to, saved_model_bytes=_common.export_bytes(FLAGS.to),
                   keras_file_bytes=os.path.getsize(os.path.join(FLAGS.to, "model.keras")))
    command, provenance = None, {}
    if FLAGS.finetune_export:
        tuned = [r for r in records.read() if r["kind"] == "conversion"
                 and r["figures"].get("export_dir") == FLAGS.finetune_export]
        if not tuned:
            _common.usage_error(f"no conversion record exported to {FLAGS.finetune_export}")
        r = tuned[-1]
        config.update(mode="tandem", time_steps=r["config"]["time_steps"],
                      epochs=round(r["figures"]["examples_seen"] / 45000, 2),
                      converted_from=os.path.basename(config.get("export_dir") or "") or None,
                      finetune=r["config"])
        figures.update(train_wall_seconds=r["figures"]["train_wall_s"],
                       train_cpu_seconds=r["figures"]["train_cpu_s"],
                       conversion_record=records.cite(r))
    else:   # an ANN recorded before by bench.record_training: its run's command, wall and commit
        trained = [r for r in records.read() if r["kind"] == "trained_model"
                   and r["config"].get("name") == FLAGS.name and "train_wall_seconds" in r["figures"]]
        r = trained[-1] if trained else None
        if r:
            figures.update(train_wall_seconds=r["figures"]["train_wall_seconds"], training_record=records.cite(r))
    if r:
        command, provenance = r["command"], {"commit": r["commit"], "dirty": r["dirty"]}
    config["name"] = FLAGS.name
    record = records.make("trained_model", figures, config, command=command, **provenance,
                          **({"note": FLAGS.note} if FLAGS.note else {}))
    records.append(record, FLAGS.out or records.RECORDS)
    print(f"appended a trained_model record for {FLAGS.name}: top-1 error {figures['top1_error']:.2f}% "
          f"on {figures.get('split')}")


def main(argv) -> None:
    del argv
    if not FLAGS.to:
        _common.usage_error("--to is required")
    if FLAGS.step == "copy":
        if not FLAGS.source:
            _common.usage_error("--source is required")
        _common.export_copy(FLAGS.source, FLAGS.to, FLAGS.converted_from)
    else:
        if not (FLAGS.name and FLAGS.eval_json and FLAGS.ann_config):
            _common.usage_error("--name, --eval_json and --ann_config are required")
        record()


if __name__ == "__main__":
    _common.run(main)
