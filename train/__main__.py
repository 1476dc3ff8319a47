"""``python -m train``: train a tandem SNN (or a baseline) from absl flags; see ``train.flags``.

Examples:
  python -m train --model=digits --dataset=digits --epochs=8 --batch_size=64 \\
      --time_steps=4 --model_dir=/tmp/digits
  python -m train --model_dir=/tmp/cifarnet            # the authors' CIFAR-10 recipe
  python -m train --model=cifarnet --dataset=folder:/data/cifar10_jpeg/train \\
      --strategy=mirrored --model_dir=/tmp/cifar_folder

Exit status: 0 done; 2 bad input (a flag, absl's own flag errors included, or a
``--model_dir`` holding another run), one line ``train: error: ...`` on stderr naming it;
1 the run failed (training diverged: ``train: error: training diverged ...``, the last
good backup is kept and nothing is exported; or writing the export failed, e.g. a full
disk: ``train: error: writing the export to ... failed (...)``, an earlier export is kept).
"""
from __future__ import annotations

import sys

from train.console import flags_parser, quiet_tensorflow_startup, usage_error

with quiet_tensorflow_startup():
    from absl import app, flags

    from train import flags as train_flags
    from train.distribute import configure_cpu_devices
    from train.rundir import RunDirError

FLAGS = train_flags.FLAGS
PROGRAM = "train"


def _register() -> None:
    """Adds train's flags to absl's global registry (``--helpshort`` lists them)."""
    flags.FLAGS.append_flag_values(FLAGS)
    for name in FLAGS:  # owned by the main module, for --helpshort
        flags.FLAGS.register_flag_by_module(sys.argv[0], FLAGS[name])


def parse_flags(argv: list[str]) -> list[str]:
    """Parses argv with absl's flags plus train's; a flag error is a usage error (exit 2)."""
    rest = flags_parser(PROGRAM, before=_register)(argv)
    FLAGS.mark_as_parsed()
    return rest


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        usage_error(PROGRAM, f"unexpected arguments {' '.join(argv[1:])!r} "
                             "(flags look like --name=value)")
    try:
        train_flags.check(FLAGS)
        configure_cpu_devices(FLAGS.cpu_devices)
        from train.export import ExportError
        from train.run import TrainingDiverged, run  # after the CPU devices are set up

        try:
            run(FLAGS)
        except (TrainingDiverged, ExportError) as e:
            print(f"{PROGRAM}: error: {e}", file=sys.stderr)
            sys.exit(1)
    except (train_flags.FlagError, RunDirError) as e:
        usage_error(PROGRAM, str(e))


def console_main() -> None:
    """Entry point of the console script (``tandem-train``): the same as ``python -m train``."""
    app.run(main, flags_parser=parse_flags)


def console_main() -> None:
    """Entry point of the console script (``tandem-train``): the same as ``python -m train``."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
