"""The Keras layers of tandem_keras."""
from tandem_keras.layers.encoding import SpikeEncoder
from tandem_keras.layers.merge import TandemAdd
from tandem_keras.layers.pooling import AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D
from tandem_keras.layers.readout import SpikeCount, TimeFlatten
from tandem_keras.layers.tandem_layers import TandemConv2D, TandemDense, TandemDepthwiseConv2D, TandemLayer

__all__ = ["SpikeEncoder", "SpikeCount", "TimeFlatten", "TandemConv2D", "TandemDense", "TandemDepthwiseConv2D", "TandemLayer",
           "TandemAdd", "AveragePooling2D", "GlobalAveragePooling2D", "MaxPooling2D"]
