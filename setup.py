"""Packaging for tandem_keras: the library plus its model, training and evaluation programs."""
from setuptools import find_packages, setup

setup(
    name="tandem_keras",
    version="0.1.0",
    description=(
        "Keras 3 layers that train deep spiking neural networks with the tandem "
        "learning rule (Wu et al., arXiv 1907.01167)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tandem_keras", "tandem_keras.*", "models", "train", "eval", "bench"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "tensorflow-datasets>=4.9",
        "numpy",
        "absl-py",
        "tensorboard",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist", "scikit-learn", "matplotlib", "psutil"],
        "plots": ["matplotlib"],
        "digits": ["scikit-learn"],
    },
    license="Apache-2.0",
)
