"""The Keras layers of tandem_keras."""
from tandem_keras.layers import linear
from tandem_keras.layers.encoding import SpikeEncoder
from tandem_keras.layers.linear import *  # noqa: F401,F403  (every tandem linear layer, linear.__all__)
from tandem_keras.layers.merge import TandemAdd
from tandem_keras.layers.pooling import AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D
from tandem_keras.layers.readout import SpikeCount, TimeFlatten
from tandem_keras.layers.tandem_layer import TandemLayer

__all__ = ["SpikeEncoder", "SpikeCount", "TimeFlatten", "TandemLayer", "TandemAdd", "AveragePooling2D",
           "GlobalAveragePooling2D", "MaxPooling2D"] + linear.__all__
