"""``python -m eval.export_nir`` (console script ``tandem-export-nir``): a trained model to NIR.

Reads the ``model.keras`` that ``python -m train`` writes into its export directory (beside
the SavedModel) and writes the tandem SNN as a NIR graph (``tk.export_nir``; needs the
``nir`` extra). The graph's input is the ``SpikeEncoder``'s spike train
(``tandem_keras.nir.encode_for_nir``) and the logits are its output summed over the T steps.

Example:
  python -m eval.export_nir --saved_model=runs/digits/export --output=digits.nir

Bad input ends the program with exit status 2 and one line on stderr naming it.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

KERAS_FILE = "model.keras"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage: "export_nir: error: ..."
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="export_nir", description=__doc__.split("\n\n")[0])
    parser.add_argument("--saved_model", required=True,
                        help=f"export directory of python -m train (holding {KERAS_FILE}), or a .keras file")
    parser.add_argument("--output", required=True, help="NIR file to write (HDF5), e.g. model.nir")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the exporter; returns 0, or exits with status 2 and one line on stderr."""
    parser = _parser()
    args = parser.parse_args(argv)
    path = args.saved_model
    if os.path.isdir(path):
        path = os.path.join(path, KERAS_FILE)
    if not os.path.isfile(path):
        parser.error(f"--saved_model: no {KERAS_FILE} at {path!r} (python -m train writes it into its export directory)")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        parser.error(f"--output: directory {out_dir!r} does not exist")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: PLC0415  (slow imports after the argument checks)

    import tandem_keras as tk  # noqa: PLC0415

    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001  (any unreadable file is bad input)
        parser.error(f"--saved_model: cannot load {path!r}: {str(error).splitlines()[0]}")
    try:
        graph = tk.export_nir(model, args.output)
    except (ValueError, ImportError) as error:
        parser.error(str(error).splitlines()[0])
    meta = graph.metadata
    print(f"wrote {args.output}: {len(graph.nodes)} nodes, T={meta['time_steps']}, "
          f"decoding={meta['decoding']}; input = the encoder's spike train, logits = output summed over T")
    return 0


if __name__ == "__main__":
    sys.exit(main())
