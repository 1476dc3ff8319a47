"""Packaging for tandem_keras: the library plus its model, training and evaluation programs.

The wheel holds ``tandem_keras``, ``models``, ``train``, ``eval`` and ``bench`` and installs
the console scripts ``tandem-train`` (= ``python -m train``) and ``tandem-eval``
(= ``python -m eval``). The version lives in ``tandem_keras/_version.py`` only.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _read(*parts: str) -> str:
    with open(os.path.join(HERE, *parts), encoding="utf-8") as f:
        return f.read()


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
    packages=find_packages(include=["tandem_keras", "tandem_keras.*", "models", "train", "eval", "bench"]),
    package_data={"train": ["README.md"], "bench": ["*.md"]},
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
        # bench.tables: the docs' results tables (DataFrame.to_markdown, which uses tabulate)
        "bench": ["pandas>=2.2", "tabulate>=0.9"],
        "plots": ["matplotlib"],
        "digits": ["scikit-learn"],
        # tk.export_nir (NIR 1.0.x file format)
        "nir": ["nir==1.0.8"],
        # tests/tandem_keras/test_nir_snntorch.py: the third-party check (CPU torch; snnTorch's NIR import needs nirtorch)
        "nir-test": ["nir==1.0.8", "torch==2.13.0", "snntorch==1.0.0", "nirtorch==2.6"],
    },
    entry_points={
        "console_scripts": [
            "tandem-train = train.__main__:console_main",
            "tandem-eval = eval.__main__:console_main",
            "tandem-export-nir = eval.export_nir:main",
        ],
    },
    license="Apache-2.0",
)
