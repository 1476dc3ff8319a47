"""Commits a trained model as an export of the repository, with a ``trained_model`` record.

    python -m bench.record_model --step=copy --source=RUN/export --to=bench/models/NAME
    python -m eval --saved_model=bench/models/NAME --dataset=folder:... --split=validation \\
        --output_json=/tmp/NAME_eval.json
    python -m bench.record_model --step=record --name=NAME --to=bench/models/NAME \\
        --eval_json=/tmp/NAME_eval.json --model_dir=RUN --train_command="$(cat RUN.cmd)" \\
        --started=2026-11-29T13:43:40Z --finished=2026-11-29T14:55:00Z [--commit=SHA]
    python -m bench.record_model --step=record ... --finetune_export=DIR   # converted / study-trained

``copy`` exports ``SOURCE/model.keras`` again, uncompiled (no optimizer state), its training
metadata kept. ``record`` appends a ``trained_model`` record (RESULTS.md's table): ``python -m
eval``'s figures of the committed export, its size, the run's ``config.json`` and per-epoch
``history.csv``, the training command, commit and wall time; for an SNN converted by
``bench.convert_cifar10`` or trained further by ``bench.accuracy_study``, those of its
``conversion`` or ``accuracy_study`` record (``--finetune_export``).
"""
from __future__ import annotations

import calendar
import csv
import json
import os
import time
from typing import Any, Optional

from bench import harness, records
from bench.harness import flags, keras, tk

FLAGS = flags.FLAGS
flags.DEFINE_enum("step", "copy", ["copy", "record"], "What to do.")
flags.DEFINE_string("source", None, "copy: the export directory (with model.keras) to commit.")
flags.DEFINE_string("to", None, "The committed export directory (bench/models/NAME).")
flags.DEFINE_string("name", None, "record: the row's name.")
flags.DEFINE_string("eval_json", None, "record: python -m eval --output_json of the committed export.")
flags.DEFINE_string("model_dir", None, "record: the python -m train run (config.json, history.csv).")
flags.DEFINE_string("train_command", None, "record: the exact python -m train command that was run.")
flags.DEFINE_string("started", None, "record: UTC start of training, YYYY-MM-DDTHH:MM:SSZ.")
flags.DEFINE_string("finished", None, "record: UTC end of training (export included).")
flags.DEFINE_string("commit", None, "record: the commit training ran at (default: HEAD now).")
flags.DEFINE_string("finetune_export", "", "record: the export_dir of the conversion or accuracy_study run.")
flags.DEFINE_string("note", "", "record: a note stored with the record.")
flags.DEFINE_string("out", "", "Records file (default bench/results/records.jsonl).")
KEEP = ("examples", "top1_error", "top5_error", "time_steps", "synops_snn", "synops_ann", "synops_ratio",
        "synops_ratio_with_encoder", "energy_snn_joules", "energy_ann_joules", "device", "dataset", "split",
        "validation_split")


def copy(source: str, to: str) -> None:
    """``source/model.keras`` exported again to ``to``, uncompiled, its training metadata kept."""
    from tandem_keras.saved_model import load_metadata

    loaded = keras.models.load_model(os.path.join(source, "model.keras"), compile=False)
    model = keras.Model.from_config(loaded.get_config())  # never compiled: no optimizer state
    model.set_weights(loaded.get_weights())
    tk.export_model(model, to, training=load_metadata(source).get("training"), keras_file="model.keras")
    size = os.path.getsize(os.path.join(to, "model.keras")) / 2**20
    print(f"exported {source} to {to} (model.keras {size:.1f} MiB)")


def export_bytes(path: str) -> int:
    """Bytes of the SavedModel in ``path`` (``model.keras`` apart)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs if f != "model.keras")


def epochs_from_history(path: str) -> list[dict]:
    """Per-epoch ``val_top1``, ``val_loss``, ``top1``, ``loss`` of a Keras ``history.csv``.

    Example:
      >>> import tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "history.csv")
      >>> _ = open(path, "w").write("epoch,val_top1\\n0,0.5\\n1,0.75\\n")
      >>> epochs_from_history(path)
      [{'epoch': 1, 'val_top1': 0.5}, {'epoch': 2, 'val_top1': 0.75}]
    """
    keys = ("val_top1", "val_loss", "top1", "loss")
    with open(path, newline="") as f:
        return [{"epoch": int(row["epoch"]) + 1,
                 **{k: float(row[k]) for k in keys if row.get(k) not in (None, "")}}
                for row in csv.DictReader(f)]


def record(name: str, to: str, eval_json: str, model_dir: str, train_command: Optional[str] = None,
           started: Optional[str] = None, finished: Optional[str] = None, commit: Optional[str] = None,
           finetune_export: str = "", note: str = "", out: Optional[str] = None) -> dict:
    """The ``trained_model`` record of the committed export ``to`` (appended to ``out``)."""
    with open(eval_json) as f:
        report = json.load(f)
    if os.path.realpath(report["saved_model"]) != os.path.realpath(to):
        harness.usage_error(f"--eval_json evaluated {report['saved_model']}, not {to}")
    config = {"name": name}
    if os.path.isfile(os.path.join(model_dir, "config.json")):
        with open(os.path.join(model_dir, "config.json")) as f:
            config = dict(json.load(f), name=name)
    figures = {key: report[key] for key in KEEP if key in report}
    figures.update(saved_model=to, saved_model_bytes=export_bytes(to))
    if os.path.isfile(os.path.join(to, "model.keras")):
        figures["keras_file_bytes"] = os.path.getsize(os.path.join(to, "model.keras"))
    stamped: dict[str, Any] = {"command": train_command, **({"note": note} if note else {})}
    if finetune_export:  # its training is that of a conversion or accuracy_study record
        frame = records.read(out)
        tuned = [r for r in records.of(frame, "conversion") + records.of(frame, "accuracy_study")
                 if finetune_export in (r["figures"].get("export_dir"), r["config"].get("export_dir"))]
        if not tuned:
            harness.usage_error(f"no conversion or accuracy_study record exported to {finetune_export}")
        r, study = tuned[-1], tuned[-1]["kind"] == "accuracy_study"
        config.update(mode="tandem", time_steps=r["config"]["time_steps"], finetune=r["config"],
                      epochs=r["config"]["epochs"] if study else round(r["figures"]["examples_seen"] / 45000, 2),
                      converted_from=os.path.basename(config.get("export_dir") or "") or None)
        if study:  # the study trains in float32 from the export it names
            config.update(model=r["config"]["network"], width_divisor=r["config"].get("width_divisor", 1),
                          mixed_precision="float32", init_from=r["config"]["start_from"] or r["config"]["init_from"])
        figures.update(train_wall_seconds=r["figures"]["train_wall_s"],
                       train_cpu_seconds=r["figures"]["train_cpu_s"], conversion_record=records.cite(r))
        stamped.update(command=r["command"], commit=r["commit"], dirty=r["dirty"])
    else:
        parse = lambda s: calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))  # noqa: E731
        wall = float(parse(finished) - parse(started)) if started and finished else None
        figures.update(per_epoch=epochs_from_history(os.path.join(model_dir, "history.csv")),
                       train_wall_seconds=wall, started_utc=started, finished_utc=finished)
        if commit:
            stamped.update(commit=commit, dirty=False)
    return records.write("trained_model", figures, config, path=out, **stamped)


def main(argv) -> None:
    del argv
    required = ("source", "to") if FLAGS.step == "copy" else ("name", "to", "eval_json", "model_dir")
    missing = [f"--{name}" for name in required if not getattr(FLAGS, name)]
    if missing:
        harness.usage_error(f"--step={FLAGS.step} needs {', '.join(missing)}")
    if FLAGS.step == "copy":
        return copy(FLAGS.source, FLAGS.to)
    r = record(FLAGS.name, FLAGS.to, FLAGS.eval_json, FLAGS.model_dir, FLAGS.train_command, FLAGS.started,
               FLAGS.finished, FLAGS.commit, FLAGS.finetune_export, FLAGS.note, FLAGS.out or records.RECORDS)
    print(f"appended a trained_model record for {FLAGS.name}: top-1 error {r['figures']['top1_error']:.2f}% "
          f"on {r['figures'].get('split')}")


if __name__ == "__main__":
    harness.run(main)
