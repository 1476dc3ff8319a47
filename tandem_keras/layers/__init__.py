"""The Keras layers of tandem_keras."""
from tandem_keras.layers.encoding import SpikeEncoder
from tandem_keras.layers.readout import SpikeCount, TimeFlatten
from tandem_keras.layers.tandem_layers import TandemConv2D, TandemDense, TandemLayer

__all__ = ["SpikeEncoder", "SpikeCount", "TimeFlatten", "TandemConv2D", "TandemDense", "TandemLayer"]
