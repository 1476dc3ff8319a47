"""``python -m train``: train a tandem SNN (or a baseline) from absl flags; see ``train.flags``.

Examples:
  python -m train --model=digits --dataset=digits --epochs=8 --batch_size=64 \\
      --time_steps=4 --model_dir=/tmp/digits
  python -m train --model_dir=/tmp/cifarnet            # the authors' CIFAR-10 recipe
  python -m train --model=cifarnet --dataset=folder:/data/cifar10_jpeg/train \\
      --strategy=mirrored --model_dir=/tmp/cifar_folder

Exit status: 0 done; 2 bad input (a flag, absl's own flag errors included, or a
``--model_dir`` in use by another run, holding another run or a backup that cannot be
read), one line ``train: error: ...`` on stderr naming it; 1 the run failed (training
diverged: ``train: error: training diverged ...``, the last good backup is kept and nothing
is exported; or writing a backup or the export failed, e.g. a full disk: ``train: error:
writing the backup of epoch ... failed (...)``, the backup before it is kept, ``train: error:
writing the export to ... failed (...)``, an earlier export is kept); 128 + the signal's number (130,
143) after SIGINT or SIGTERM, one line ``train: interrupted by SIGTERM: ...`` saying which
backup is kept.
"""
from __future__ import annotations

import os
import signal
import sys

from common.console import flags_parser, quiet_tensorflow_startup, usage_error

with quiet_tensorflow_startup():
    from absl import app, flags

    from train import flags as train_flags
    from train import backup
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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during a run (raised in the main thread by :func:`_interrupt`)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, frame) -> None:
    raise Interrupted(signum)


def _interrupted(error: Interrupted) -> None:
    """One line: which signal, what is kept; exits with 128 + the signal's number."""
    backup_dir = os.path.join(FLAGS.model_dir, "backup")
    epochs = backup.epochs_done(backup_dir) if os.path.isdir(backup_dir) else 0
    kept = (f"the backup of epoch {epochs} in {backup_dir} is kept; rerun the same command to "
            "resume" if epochs else "no epoch had ended")
    print(f"{PROGRAM}: interrupted by {error}: {kept}", file=sys.stderr)
    sys.exit(128 + error.signum)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        usage_error(PROGRAM, f"unexpected arguments {' '.join(argv[1:])!r} "
                             "(flags look like --name=value)")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        configure_cpu_devices(FLAGS.cpu_devices)
        from train.callbacks import TrainingDiverged
        from train.export import ExportError
        from train.run import run  # after the CPU devices are set up

        try:
            run(train_flags.to_config(FLAGS), restart=FLAGS.restart)
        except (TrainingDiverged, ExportError, backup.BackupWriteError) as e:
            print(f"{PROGRAM}: error: {e}", file=sys.stderr)
            sys.exit(1)
    except (train_flags.FlagError, RunDirError) as e:
        usage_error(PROGRAM, str(e))
    except Interrupted as e:
        _interrupted(e)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
