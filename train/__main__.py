"""``python -m train``: train a tandem SNN (or a baseline) from absl flags; see ``train.flags``.

Examples:
  python -m train --model=digits --dataset=digits --epochs=8 --batch_size=64 \\
      --time_steps=4 --model_dir=/tmp/digits
  python -m train --model_dir=/tmp/cifarnet            # the authors' CIFAR-10 recipe
  python -m train --model=cifarnet --dataset=folder:/data/cifar10_jpeg/train \\
      --strategy=mirrored --model_dir=/tmp/cifar_folder

A bad flag value ends the program with exit status 2 and one line on stderr naming it.
"""
from __future__ import annotations

import sys

from absl import app, flags

from train import flags as train_flags
from train.distribute import configure_cpu_devices

FLAGS = train_flags.FLAGS


def parse_flags(argv: list[str]) -> list[str]:
    """Parses argv with absl's flags plus train's (``--helpshort`` lists train's)."""
    flags.FLAGS.append_flag_values(FLAGS)
    for name in FLAGS:  # owned by the main module, for --helpshort
        flags.FLAGS.register_flag_by_module(sys.argv[0], FLAGS[name])
    rest = app.parse_flags_with_usage(argv)
    FLAGS.mark_as_parsed()
    return rest


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail(f"unexpected arguments {' '.join(argv[1:])!r} (flags look like --name=value)")
    try:
        train_flags.check(FLAGS)
        configure_cpu_devices(FLAGS.cpu_devices)
        from train.run import run  # imports TensorFlow after the CPU devices are set up

        run(FLAGS)
    except train_flags.FlagError as e:
        _fail(str(e))


def _fail(message: str) -> None:
    print(f"train: error: {message}", file=sys.stderr)
    sys.exit(2)


def console_main() -> None:
    """Entry point of the console script (``tandem-train``): the same as ``python -m train``."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
