"""The programs of tandem_keras, as an installed wheel holds them, and their console scripts.

In a checkout the programs are the top-level packages ``models``, ``common`` (what the
others share), ``train``, ``eval`` and ``bench``, run as ``python -m train``, ``python -m eval``, ... from the project root. The
wheel does not install them as top-level packages of site-packages, where they would
overwrite or shadow other projects' ``models`` or ``train``: it installs them inside this
package (``tandem_keras_programs/models``, ``.../train``, ...; ``setup.py``'s
``package_dir``). Their code keeps its absolute imports (``import models``, ``from train
import data``), so a program runs with this package's directory first on ``sys.path`` --
of its own process only -- which is what the console scripts below do before running the
program's module as ``python -m`` would (``runpy``):

=============================================  ===================================
installed                                      checkout
=============================================  ===================================
``tandem-train ARGS``                          ``python -m train ARGS``
``tandem-eval ARGS``                           ``python -m eval ARGS``
``tandem-export-nir ARGS``                     ``python -m eval.export_nir ARGS``
``python -m tandem_keras_programs MODULE ARGS``  ``python -m MODULE ARGS`` (e.g. ``bench.tables``)
=============================================  ===================================

Importing this package imports nothing else (no TensorFlow), and the library
(``tandem_keras``) never imports it.

Example:
    >>> import os
    >>> sorted(p for p in PROGRAMS if os.path.isdir(os.path.join(programs_dir(), p)))
    ['bench', 'common', 'eval', 'models', 'train']
"""
from __future__ import annotations

import os
import runpy
import sys
from typing import NoReturn, Optional, Sequence

#: The program packages (top-level in a checkout, sub-packages of this one when installed).
PROGRAMS = ("models", "common", "train", "eval", "bench")
USAGE = "usage: python -m tandem_keras_programs MODULE [ARGS...]  (MODULE: train, eval, eval.export_nir, bench.NAME)"


def programs_dir() -> str:
    """The directory that holds the program packages: this package's own when installed,
    the project root (its parent) in a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    return here if os.path.isdir(os.path.join(here, "train")) else os.path.dirname(here)


def _refuse(message: str) -> NoReturn:
    print(f"tandem_keras_programs: error: {message}", file=sys.stderr)
    sys.exit(2)


def run_module(module: str, argv: Sequence[str]) -> None:
    """Runs ``module`` (``train``, ``eval``, ``bench.tables``, ...) as ``python -m module argv``
    would, with the program packages importable under their own names in this process."""
    if module.split(".")[0] not in PROGRAMS:
        _refuse(f"{module!r} is not a module of the programs ({', '.join(PROGRAMS)})")
    directory = programs_dir()
    for name in PROGRAMS:  # one imported from elsewhere before us would shadow ours
        file = getattr(sys.modules.get(name), "__file__", None)
        if file is None:
            continue
        where = os.path.dirname(os.path.abspath(file))
        if os.path.basename(file) == "__init__.py":
            where = os.path.dirname(where)
        if where != directory:
            _refuse(f"a module named {name!r} from {where} is already imported in this process")
    if not sys.path or sys.path[0] != directory:
        sys.path.insert(0, directory)
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m tandem_keras_programs MODULE ARGS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    run_module(argv[0], argv[1:])


def train() -> None:
    """Console script ``tandem-train``: ``python -m train``."""
    run_module("train", sys.argv[1:])


def evaluate() -> None:
    """Console script ``tandem-eval``: ``python -m eval``."""
    run_module("eval", sys.argv[1:])


def export_nir() -> None:
    """Console script ``tandem-export-nir``: ``python -m eval.export_nir``."""
    run_module("eval.export_nir", sys.argv[1:])
