"""``python -m eval``: evaluate an exported tandem model from its SavedModel directory alone.

Prints what the model is (its export records its mode: an SNN, or an ANN), top-1/top-5
error and, for an SNN, time steps (encoding window and inference steps), SynOps of the SNN
against the ANN MACs of the same architecture, their ratio, energy estimates and a
per-layer table; for an ANN its MACs and their energy. Writes the same as JSON
(``--output_json``) and PNG figures (``--plots_dir``). See ``eval.report``.

Examples:
  python -m eval --saved_model=/tmp/digits/export --dataset=digits --split=test \\
      --output_json=/tmp/digits/eval.json --plots_dir=/tmp/digits/plots
  python -m eval --saved_model=runs/jpeg/export --dataset=folder:/data/cifar10_jpeg/train \\
      --split=validation   # the images held out in training, wherever the folder lies
  python -m eval --saved_model=runs/jpeg/export --dataset=folder:/data/cifar10_jpeg/test \\
      --split=all          # every image of a folder of test images
  python -m eval --saved_model=/tmp/t5/export,/tmp/t10/export --dataset=cifar10 \\
      --plots_dir=/tmp/plots      # several models: also error vs time steps (Fig. 8B)

Bad input (absl's own flag errors included, an incomplete export, a SavedModel with NaN
or infinite weights, a ``--split=train/validation`` on other data than the model was
trained with, an ``--output_json``/``--plots_dir`` that cannot be written) ends the program
with exit status 2 and one line ``eval: error: ...`` on stderr naming it, before anything
is evaluated; a SavedModel without the activity endpoint is evaluated for accuracy with a
warning.
"""
from __future__ import annotations

from common.console import flags_parser, quiet_tensorflow_startup, usage_error

with quiet_tensorflow_startup():
    from absl import app, flags

    from eval.report import EvalError, evaluate_models

PROGRAM = "eval"

flags.DEFINE_list("saved_model", None, "SavedModel directory (several: comma-separated).")
flags.DEFINE_string("dataset", None,
                    "Dataset: cifar10, imagenet2012, digits or folder:PATH (default: the one "
                    "the model was trained on, as its export records, else cifar10).")
flags.DEFINE_enum("split", "test", ["train", "validation", "test", "all"],
                  "Split to evaluate: train / validation (those of training: the data the "
                  "model was trained on), test (TFDS, digits), all (every example: e.g. a "
                  "folder of test images).")
flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's).")
flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.")
flags.DEFINE_float("validation_split", None,
                   "Fraction held out of the training split (default: the one the model was "
                   "trained with, as its export records, else 0.1).")
flags.DEFINE_integer("max_examples", None, "Evaluate at most this many examples.")
flags.DEFINE_string("output_json", None, "Write the report as JSON here.")
flags.DEFINE_string("plots_dir", None, "Write PNG figures here.")
flags.DEFINE_boolean("skip_bad_images", None,
                     "folder:PATH: leave out image files that cannot be decoded (default: as "
                     "in training; refused otherwise, naming them).")
flags.DEFINE_boolean("analysis", True,
                     "Fig. 7C / Fig. 9 analyses on the first batch when SAVED_MODEL/model.keras exists.")

flags.DEFINE_integer("diagnosis_examples", 0,
                     "Also diagnose the SNN on this many of the first examples (tk.diagnosis: per "
                     "spiking layer the error it adds and inherits, the hybrids' top-1; needs "
                     "SAVED_MODEL/model.keras; 0: no).", lower_bound=0)

FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        usage_error(PROGRAM, f"unexpected arguments {' '.join(argv[1:])!r} "
                             "(flags look like --name=value)")
    if not FLAGS.saved_model:
        usage_error(PROGRAM, "--saved_model is required")
    try:
        evaluate_models(FLAGS.saved_model, FLAGS.dataset, split=FLAGS.split,
                        batch_size=FLAGS.batch_size, data_dir=FLAGS.data_dir,
                        validation_split=FLAGS.validation_split,
                        max_examples=FLAGS.max_examples, plots_dir=FLAGS.plots_dir,
                        output_json=FLAGS.output_json, analysis=FLAGS.analysis,
                        skip_bad_images=FLAGS.skip_bad_images,
                        diagnosis_examples=FLAGS.diagnosis_examples)
    except EvalError as error:
        usage_error(PROGRAM, str(error))


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser(PROGRAM))
