"""tandem_keras: deep spiking neural networks in Keras, trained with the tandem learning rule.

Wu et al., "A Tandem Learning Rule for Efficient and Rapid Inference on Deep Spiking
Neural Networks" (arXiv 1907.01167). The forward pass of every tandem layer is the exact
integrate-and-fire SNN; its gradient comes from the coupled bounded-ReLU ANN.
"""

from tandem_keras import neurons, tandem
from tandem_keras._checks import MODES
from tandem_keras.layers import SpikeCount, SpikeEncoder, TandemConv2D, TandemDense, TandemLayer, TimeFlatten
from tandem_keras.modes import set_mode, with_mode

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "SpikeCount",
    "SpikeEncoder",
    "TandemConv2D",
    "TandemDense",
    "TandemLayer",
    "TimeFlatten",
    "neurons",
    "set_mode",
    "tandem",
    "with_mode",
]
