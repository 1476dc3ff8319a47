"""Records a ``python -m train`` run and its ``python -m eval`` report as one result record.

    python -m bench.record_training --name=cifarnet_w4_T4 --model_dir=RUN \\
        --train_command="$(cat RUN.cmd)" --eval_json=RUN/eval_validation.json \\
        --commit=SHA --started=2026-11-29T13:43:40Z --finished=2026-11-29T14:55:00Z \\
        [--copy_export_to=bench/models/cifarnet_w4_T4]

The record (kind ``trained_model``, :mod:`bench.records`) holds the exact training command,
its configuration (``RUN/config.json``, the flags ``python -m train`` stored), the commit the
training ran at, the wall time, the per-epoch training-time validation top-1 (``history.csv``)
and the figures of the evaluation of the exported SavedModel (top-1/top-5 error, SynOps,
energy). ``--copy_export_to`` exports the model again into the repository (SavedModel and an
uncompiled ``model.keras``, without optimizer state), and the record names where it went and
its size.
``python -m bench.tables`` renders the records (table ``trained_models``).

Example:
  >>> epochs_from_history("epoch,val_top1\\n0,0.5\\n1,0.75\\n")
  [{'epoch': 1, 'val_top1': 0.5}, {'epoch': 2, 'val_top1': 0.75}]
"""
from __future__ import annotations

import calendar
import csv
import io
import json
import os
import time
from typing import Any, Optional, Sequence

from absl import app, flags

from bench import _common, records

FLAGS = flags.FLAGS
flags.DEFINE_string("name", None, "Name of the trained model (the table's row).")
flags.DEFINE_string("model_dir", None, "The run's --model_dir (config.json, history.csv).")
flags.DEFINE_string("train_command", None, "The exact python -m train command that was run.")
flags.DEFINE_string("eval_json", None, "python -m eval --output_json of the exported model.")
flags.DEFINE_string("commit", None, "Commit the training ran at (default: HEAD now).")
flags.DEFINE_string("started", None, "UTC start of training, YYYY-MM-DDTHH:MM:SSZ.")
flags.DEFINE_string("finished", None, "UTC end of training (export included).")
flags.DEFINE_string("export_dir", None, "The SavedModel (default MODEL_DIR/export).")
flags.DEFINE_string("copy_export_to", None, "Copy the SavedModel here (repository path).")
flags.DEFINE_string("note", None, "Optional note stored with the record.")
flags.DEFINE_string("out", records.RECORDS, "Records file to append to.")

_KEEP = ("examples", "top1_error", "top5_error", "time_steps", "synops_snn", "synops_ann",
         "synops_ratio", "synops_ratio_with_encoder", "energy_snn_joules", "energy_ann_joules",
         "device", "dataset", "split", "validation_split")


def epochs_from_history(text: str) -> list[dict]:
    """Per-epoch ``val_top1`` (and ``val_loss`` when present) of a Keras ``history.csv``."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        entry: dict[str, Any] = {"epoch": int(row["epoch"]) + 1}
        for key in ("val_top1", "val_loss", "top1", "loss"):
            if row.get(key) not in (None, ""):
                entry[key] = float(row[key])
        rows.append(entry)
    return rows


def _seconds(started: Optional[str], finished: Optional[str]) -> Optional[float]:
    if not (started and finished):
        return None
    parse = lambda s: calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))  # noqa: E731
    return float(parse(finished) - parse(started))


def make_record(name: str, model_dir: str, train_command: str, report: dict,
                export_dir: str, copied_to: Optional[str] = None, **provenance: Any) -> dict:
    """The ``trained_model`` record of one run (see the module docstring)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = dict(json.load(f), name=name)
    with open(os.path.join(model_dir, "history.csv")) as f:
        epochs = epochs_from_history(f.read())
    started, finished = provenance.pop("started", None), provenance.pop("finished", None)
    figures = {key: report[key] for key in _KEEP if key in report}
    figures.update(per_epoch=epochs, train_wall_seconds=_seconds(started, finished),
                   started_utc=started, finished_utc=finished,
                   saved_model=copied_to or export_dir,
                   saved_model_bytes=_common.export_bytes(copied_to or export_dir))
    keras_file = os.path.join(copied_to or export_dir, "model.keras")
    if os.path.isfile(keras_file):
        figures["keras_file_bytes"] = os.path.getsize(keras_file)
    return records.make("trained_model", figures, config, command=train_command, **provenance)


def main(argv: Sequence[str]) -> None:
    del argv
    for flag in ("name", "model_dir", "train_command", "eval_json"):
        if not getattr(FLAGS, flag):
            raise app.UsageError(f"--{flag} is required")
    export_dir = FLAGS.export_dir or os.path.join(FLAGS.model_dir, "export")
    with open(FLAGS.eval_json) as f:
        report = json.load(f)
    if os.path.realpath(report["saved_model"]) != os.path.realpath(export_dir):
        raise app.UsageError(f"--eval_json evaluated {report['saved_model']}, not {export_dir}")
    copied = None
    if FLAGS.copy_export_to:
        copied = FLAGS.copy_export_to
        _common.export_copy(export_dir, copied)   # with model.keras, uncompiled (no optimizer state)
    provenance: dict[str, Any] = {"started": FLAGS.started, "finished": FLAGS.finished}
    if FLAGS.commit:
        provenance.update(commit=FLAGS.commit, dirty=False)
    if FLAGS.note:
        provenance["note"] = FLAGS.note
    record = make_record(FLAGS.name, FLAGS.model_dir, FLAGS.train_command, report, export_dir,
                         copied, **provenance)
    records.append(record, FLAGS.out)
    print(f"appended a trained_model record for {FLAGS.name} to {FLAGS.out}: "
          f"top-1 error {record['figures']['top1_error']:.2f}% on {record['figures'].get('split')}")


if __name__ == "__main__":
    app.run(main)
