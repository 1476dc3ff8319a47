"""Converting a trained Keras ANN into a tandem SNN (method §10).

:func:`convert` (``tk.convert``) builds the SNN with the ANN's weights (``build``,
``patterns``), optionally with thresholds calibrated on data (``calibrate``);
:class:`ProgressiveTandem` fine-tunes it with the layers switched to tandem one at a time.
"""
from tandem_keras.conversion.api import ConversionReport, convert
from tandem_keras.conversion.build import DEFAULT_BINARY_NEURON, DEFAULT_NEURON, ConversionError
from tandem_keras.conversion.distill import Distiller
from tandem_keras.conversion.progressive import ProgressiveTandem, set_stage, stage_of, stages

__all__ = ["DEFAULT_BINARY_NEURON", "DEFAULT_NEURON", "ConversionError", "ConversionReport", "Distiller", "ProgressiveTandem", "convert", "set_stage", "stage_of",
           "stages"]
