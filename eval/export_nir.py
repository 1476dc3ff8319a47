"""``python -m eval.export_nir`` (console script ``tandem-export-nir``): a trained model to NIR.

Reads the ``model.keras`` that ``python -m train`` writes into its export directory (beside
the SavedModel) and writes the tandem SNN as a NIR graph (``tk.export_nir``; needs the
``nir`` extra). The graph's input is the ``SpikeEncoder``'s spike train
(``tandem_keras.nir.encode_for_nir``) and the logits are its output summed over the T steps.

Example:
  python -m eval.export_nir --saved_model=runs/digits/export --output=digits.nir

Bad input ends the program with exit status 2 and one line on stderr naming it, before
anything is written: a missing, truncated or damaged ``.keras`` file, an ``--output`` that
is the model itself or another existing file that is not a NIR (HDF5) file (it is never
overwritten), a model NIR cannot express (naming the layer, and the decoding when that is
the reason). The NIR file is written aside and renamed into place, so a failure leaves an
earlier one as it was. TensorFlow's start-up lines are held back as in ``python -m train``
(``TF_CPP_MIN_LOG_LEVEL=2``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import zipfile
from typing import Optional, Sequence

from common.console import quiet_tensorflow_startup

KERAS_FILE = "model.keras"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage: "export_nir: error: ..."
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="export_nir", description=__doc__.split("\n\n")[0])
    parser.add_argument("--saved_model", required=True,
                        help=f"export directory of python -m train (holding {KERAS_FILE}), or a .keras file")
    parser.add_argument("--output", required=True, help="NIR file to write (HDF5), e.g. model.nir")
    return parser


def keras_file_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete ``.keras`` file (a zip archive), or None."""
    if not zipfile.is_zipfile(path):
        return (f"{path!r} is not a .keras file (a zip archive): it is truncated, damaged or "
                "another kind of file")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"{path!r} is a damaged .keras file ({error})"
    return f"{path!r} is a damaged .keras file ({bad} fails its check)" if bad else None


def output_problem(output: str, model_path: str) -> Optional[str]:
    """Why ``--output`` must not be written, or None."""
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        return f"directory {out_dir!r} does not exist"
    if os.path.isdir(output):
        return f"{output!r} is a directory"
    if os.path.exists(output):
        if os.path.samefile(output, model_path):
            return f"{output!r} is the model to export; name another file, e.g. model.nir"
        with open(output, "rb") as f:
            if f.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                return (f"{output!r} exists and is not a NIR (HDF5) file; not overwritten "
                        "(name another file, e.g. model.nir)")
    return None


def _write_aside(graph, output: str) -> None:
    import nir  # noqa: PLC0415

    directory, name = os.path.split(os.path.abspath(output))
    handle, new = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    os.close(handle)
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(new, 0o666 & ~mask)  # mkstemp's 0600, not what a plain open gives
    try:
        nir.write(new, graph)
        os.replace(new, output)
    except BaseException:
        if os.path.exists(new):
            os.remove(new)
        raise


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the exporter; returns 0, or exits with status 2 and one line on stderr."""
    parser = _parser()
    args = parser.parse_args(argv)
    path = args.saved_model
    if os.path.isdir(path):
        path = os.path.join(path, KERAS_FILE)
    if not os.path.isfile(path):
        parser.error(f"--saved_model: no {KERAS_FILE} at {path!r} (python -m train writes it into its export directory)")
    problem = keras_file_problem(path)
    if problem:
        parser.error(f"--saved_model: {problem}")
    problem = output_problem(args.output, path)
    if problem:
        parser.error(f"--output: {problem}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_tensorflow_startup():  # slow imports after the argument checks
        import keras  # noqa: PLC0415

        import tandem_keras as tk  # noqa: PLC0415

    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001  (any unreadable file is bad input)
        parser.error(f"--saved_model: cannot load {path!r}: {str(error).splitlines()[0]}")
    try:
        graph = tk.export_nir(model, None)
    except (ValueError, ImportError) as error:
        parser.error(str(error).splitlines()[0].removeprefix("export_nir: "))
    _write_aside(graph, args.output)
    meta = graph.metadata
    print(f"wrote {args.output}: {len(graph.nodes)} nodes, T={meta['time_steps']}, "
          f"decoding={meta['decoding']}; input = the encoder's spike train, logits = output summed over T")
    return 0


if __name__ == "__main__":
    sys.exit(main())
