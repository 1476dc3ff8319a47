"""Packaging for tandem_keras: the library plus its model, training and evaluation programs.

The wheel holds the library ``tandem_keras`` and the programs of the checkout's top-level
``models``, ``common``, ``train``, ``eval`` and ``bench``, installed *inside* ``tandem_keras_programs``
(``package_dir`` maps ``tandem_keras_programs.train`` to ``train/``, ...), so that nothing
named ``models`` or ``train`` lands at the top of site-packages beside other projects. The
console scripts ``tandem-train`` (= ``python -m train``), ``tandem-eval`` (= ``python -m
eval``) and ``tandem-export-nir`` run them (``tandem_keras_programs``), and
``python -m tandem_keras_programs MODULE`` any other (``bench.NAME``). The version lives in
``tandem_keras/_version.py`` only.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _read(*parts: str) -> str:
    with open(os.path.join(HERE, *parts), encoding="utf-8") as f:
        return f.read()


#: The checkout's top-level program packages, installed under ``tandem_keras_programs``.
PROGRAMS = ("models", "common", "train", "eval", "bench")
PROGRAM_PACKAGES = [f"tandem_keras_programs.{name}" for name in find_packages(
    include=[*PROGRAMS, *(f"{p}.*" for p in PROGRAMS)])]

VERSION = re.search(r'^__version__ = "([^"]+)"', _read("tandem_keras", "_version.py"), re.M).group(1)

setup(
    name="tandem_keras",
    version=VERSION,
    description=(
        "Keras 3 layers that train deep spiking neural networks with the tandem "
        "learning rule (Wu et al., arXiv 1907.01167)"
    ),
    long_description=_read("README.md"),
    long_description_content_type="text/markdown",
    packages=[*find_packages(include=["tandem_keras", "tandem_keras.*", "tandem_keras_programs"]),
              *PROGRAM_PACKAGES],
    package_dir={f"tandem_keras_programs.{p}": p for p in PROGRAMS},
    package_data={"tandem_keras_programs.train": ["README.md"],
                  "tandem_keras_programs.bench": ["*.md"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "tensorflow-datasets>=4.9",
        # TFDS's dataset builders import it (via etils) when preparing a dataset, but
        # tensorflow-datasets does not declare it on Python >= 3.9.
        "importlib_resources",
        "numpy",
        "absl-py",
        "tensorboard",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist", "scikit-learn", "matplotlib", "psutil",
                 "pandas>=2.2", "tabulate>=0.9"],
        # the bench programs: bench.tables (DataFrame.to_markdown, which uses tabulate), the
        # reproduction's figures (matplotlib), bench.digits_precision (scikit-learn)
        "bench": ["pandas>=2.2", "tabulate>=0.9", "matplotlib", "scikit-learn"],
        "plots": ["matplotlib"],
        "digits": ["scikit-learn"],
        # tk.export_nir (NIR 1.0.x file format)
        "nir": ["nir==1.0.8"],
        # tests/tandem_keras/test_nir_snntorch.py: the third-party check (CPU torch; snnTorch's NIR import needs nirtorch)
        "nir-test": ["nir==1.0.8", "torch==2.13.0", "snntorch==1.0.0", "nirtorch==2.6"],
    },
    entry_points={
        "console_scripts": [
            "tandem-train = tandem_keras_programs:train",
            "tandem-eval = tandem_keras_programs:evaluate",
            "tandem-export-nir = tandem_keras_programs:export_nir",
        ],
    },
    license="Apache-2.0",
)
