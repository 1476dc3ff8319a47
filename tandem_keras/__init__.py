"""tandem_keras: deep spiking neural networks in Keras, trained with the tandem learning rule.

Wu et al., "A Tandem Learning Rule for Efficient and Rapid Inference on Deep Spiking
Neural Networks" (arXiv 1907.01167). The forward pass of every tandem layer is the exact
integrate-and-fire SNN; its gradient comes from the coupled bounded-ReLU ANN.

Modules: ``kinds`` (the registry of layer kinds: what every tool reads of a layer),
``neurons`` (IF and LIF neurons, serializable), ``couplings`` (SNN forward, coupled ANN
backward), ``layers`` (tandem layers, pooling on spike trains, ``TandemAdd``), ``modes``,
``synops`` (the model's graph read for SynOps: fan-out through pooling and merges, MACs,
energy, devices, ``tk.summary``, ``ActivityLogger``), ``export`` (SavedModel with
activity), ``analysis`` (Fig. 7C, Fig. 9), ``metrics`` (top-k with one tie rule),
``decoding`` (spike-count output layer: scale, straight-through coupling, membrane tie
rule), ``nir`` (NIR export), ``conversion`` (``tk.convert``: a trained Keras ANN
to a tandem SNN, threshold calibration, the progressive schedule), ``plots`` (matplotlib figures; needs the ``plots`` extra).
"""

from tandem_keras import _backend  # noqa: F401  (first: refuses a non-TensorFlow Keras backend)
from tandem_keras import (analysis, couplings, decoding, diagnosis, export, kinds, metrics, neurons, plots,
                          surrogates, synops)
from tandem_keras.modes import MODES
from tandem_keras.export import export_model
from tandem_keras.nir import encode_for_nir, export_nir  # needs `nir` only when called
from tandem_keras.layers import (AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D, SpikeCount,
                                 SpikeEncoder, TandemAdd, TandemLayer, TimeFlatten)
from tandem_keras.layers.linear import *  # noqa: F401,F403  (TandemConv2D, TandemDense, ...: linear.__all__)
from tandem_keras.layers import linear as _linear
from tandem_keras.modes import set_mode, with_mode
from tandem_keras import conversion
from tandem_keras.conversion import convert
from tandem_keras.synops import ActivityLogger, count_synops, describe_model, register_device, summary
from tandem_keras.kinds import register_layer

from tandem_keras._version import __version__

__all__ = [
    "MODES",
    "ActivityLogger",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "MaxPooling2D",
    "TandemAdd",
    "SpikeCount",
    "SpikeEncoder",
    "TandemLayer",
    "TimeFlatten",
    "analysis",
    "conversion",
    "convert",
    "couplings",
    "count_synops",
    "decoding",
    "diagnosis",
    "describe_model",
    "export",
    "kinds",
    "encode_for_nir",
    "export_model",
    "export_nir",
    "metrics",
    "neurons",
    "plots",
    "register_device",
    "register_layer",
    "set_mode",
    "summary",
    "surrogates",
    "synops",
    "with_mode",
] + _linear.__all__
