"""What the programs print: usage errors, TensorFlow start-up, progress.

- :func:`usage_error` / :func:`flags_parser`: one convention for bad input, one line
  ``PROGRAM: error: MESSAGE`` on stderr and exit status 2, also for absl's own flag errors
  (unknown flag, bad enum value, missing required flag), which absl itself reports on
  several lines with exit status 1.
- :func:`quiet_tensorflow_startup`: TensorFlow 2.21's C++ libraries log a few lines while
  they load (``WARNING: All log messages before absl::InitializeLog() ...``, oneDNN and CUDA
  notices, ``failed call to cuInit`` on a machine without GPU) before any setting can
  silence them: they ignore ``TF_CPP_MIN_LOG_LEVEL``. When that variable asks for quiet
  (``>= 2``, as ``make`` sets it), the context manager holds back stderr while TensorFlow
  loads and then passes on every line except those INFO/WARNING lines (and the cuInit
  error, when no GPU is found). Nothing is held back with ``TF_CPP_MIN_LOG_LEVEL`` unset.
- :func:`progress_verbosity`: a Keras progress bar on a terminal, none otherwise (the
  one-line epoch summary of ``train.callbacks.EpochSummary`` is the record then).

This module imports neither TensorFlow nor Keras, so that it can run before them.

Example:
    >>> with quiet_tensorflow_startup():                            # doctest: +SKIP
    ...     import tensorflow as tf
    ...     gpus = tf.config.list_physical_devices("GPU")
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Any, Callable, Iterator, NoReturn

USAGE_ERROR = 2  # exit status of bad input (flags, files); failures of a run exit with 1

# absl/glog C++ log line: severity letter, MMDD, time, thread id, file:line]
_CPP_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s:]+:\d+\] ")
_PRE_INIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NO_GPU = "failed call to cuInit"


def usage_error(program: str, message: str) -> NoReturn:
    """Prints ``PROGRAM: error: MESSAGE`` (first line of ``message``) to stderr; exits with 2."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else "bad input"
    print(f"{program}: error: {first}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def flags_parser(program: str, before: Callable[[], None] | None = None,
                 flag_values: Any = None) -> Callable[[list[str]], list[str]]:
    """An ``absl.app.run(flags_parser=...)`` that reports absl's flag errors as usage errors.

    ``before`` runs first (e.g. to register a program's own flags); ``flag_values`` is the
    registry to parse into (default: absl's global ``flags.FLAGS``). ``--help`` and
    ``--helpshort`` keep absl's behaviour.
    """
    from absl import flags

    def parse(argv: list[str]) -> list[str]:
        if before is not None:
            before()
        try:
            return (flags.FLAGS if flag_values is None else flag_values)(argv)
        except flags.Error as error:
            usage_error(program, _flag_message(str(error)))

    return parse


def _flag_message(message: str) -> str:
    """absl's messages on one line, e.g. ``Unknown command line flag 'x'``; a bad value as
    ``--name=value: problem`` (absl: ``flag --name=value: problem``), as the programs' own."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    text = " ".join(lines) if lines else "bad flags"
    return text[len("flag "):] if text.startswith("flag --") else text


def _keep(line: str, level: int, gpus_found: bool) -> bool:
    if line.rstrip("\n") == _PRE_INIT:
        return False
    match = _CPP_LINE.match(line)
    if not match:
        return True
    severity = "IWEF".index(match.group(1))
    if severity < level:  # what TF_CPP_MIN_LOG_LEVEL asked for
        return False
    return not (_NO_GPU in line and not gpus_found)


@contextlib.contextmanager
def quiet_tensorflow_startup() -> Iterator[None]:
    """Imports TensorFlow and finds its devices with its start-up notices held back.

    Active only when ``TF_CPP_MIN_LOG_LEVEL`` is 2 or 3; stderr written inside the block
    (Python's too) is passed on afterwards, minus the lines described in the module
    docstring. The block should be short: it is meant for the imports of a ``__main__``.
    """
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0)
    except ValueError:
        level = 0
    if level < 2:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    gpus_found = True
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow as tf

            # Loads the device plugins (cuInit) without starting the runtime, so logical
            # devices and multi-worker collectives can still be configured afterwards.
            gpus_found = bool(tf.config.list_physical_devices("GPU"))
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = held.read().decode("utf-8", errors="replace")
            sys.stderr.write("".join(line for line in text.splitlines(keepends=True)
                                     if _keep(line, level, gpus_found)))
            sys.stderr.flush()


def progress_verbosity() -> int:
    """``verbose`` for ``model.fit``: 1 (progress bar) on a terminal, else 0."""
    return 1 if sys.stdout.isatty() else 0


def output_problem(path: str, directory: bool) -> str | None:
    """Why ``path`` (a file, or with ``directory`` a directory) cannot be written or created,
    or None; the programs check their outputs before doing any work. URLs (``gs://...``) are
    left to TensorFlow's file system.

    Example:
      >>> output_problem("/proc/version", directory=True)
      'exists and is not a directory'
    """
    if "://" in path:
        return None
    if os.path.isdir(path) and not directory:
        return "is a directory"
    if os.path.exists(path):
        if directory and not os.path.isdir(path):
            return "exists and is not a directory"
        target = path if directory else os.path.dirname(os.path.abspath(path))
        return None if os.access(target, os.W_OK | os.X_OK) else f"{target} is not writable"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the nearest existing ancestor must take new entries
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: {parent} is not writable"
    return None
