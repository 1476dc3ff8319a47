"""The one version number of tandem_keras (read by setup.py without importing TensorFlow)."""

__version__ = "0.1.0"
