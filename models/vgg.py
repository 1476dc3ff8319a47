"""VGG-11 for CIFAR with average pooling, as a tandem SNN.

Simonyan & Zisserman's configuration A (eight 3x3 convolutions: 64, M, 128, M, 256, 256, M,
512, 512, M, 512, 512, M) with batch norm, every max pooling replaced by a 2x2 average
pooling (an SNN's usual choice: linear, so exact, method §3), and the compact CIFAR
classifier (one hidden layer of 512, as the common CIFAR variants, instead of 4096-4096)::

    images -> normalize -> encoder_conv -> encoder_bn -> encoder         (the first conv: analog)
           -> pool1 -> tandem_conv1 -> pool2 -> tandem_conv2 -> tandem_conv3 -> pool3
           -> tandem_conv4 -> tandem_conv5 -> pool4 -> tandem_conv6 -> tandem_conv7 -> pool5
           -> flatten -> tandem_dense1 -> readout

``poolN`` is ``tk.AveragePooling2D``: its output is an exact input current of the next
tandem layer (which integrates it), and the last one's feeds the hidden dense layer.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import keras

import tandem_keras as tk
from models._builder import (NEURON, Conv, check_common, check_options, finish, image_input, narrow,
                             readout, stem)
from models.cifarnet import CIFAR10_MEAN, CIFAR10_STD

#: Configuration A after the first (encoder) convolution: filters, or "M" for a 2x2 pooling.
CONFIG = ("M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
ENCODER = Conv(64)
DENSE = (512,)


def vgg11(
    *,
    include_top: bool = True,
    weights: Optional[str] = None,
    input_tensor: Any = None,
    input_shape: Optional[Sequence[int]] = None,
    num_classes: int = 10,
    time_steps: int = 4,
    decode: str = "membrane",
    mode: str = "tandem",
    neuron: Any = NEURON,
    dropout: float = 0.2,
    include_preprocessing: bool = True,
    width_divisor: int = 1,
    name: str = "vgg11",
) -> keras.Model:
    """VGG-11 (CIFAR, average pooling): encoder conv 64; tandem conv 128, 256, 256, 512, 512,
    512, 512 with five 2x2 average poolings; tandem dense 512; ``num_classes``.

    All convolutions 3x3 'same' with batch norm; dropout ``dropout`` on the dense layer's
    spike counts. Images in ``[0, 255]`` (32x32 or any multiple of 32), normalized with the
    CIFAR-10 statistics inside the model unless ``include_preprocessing=False``.

    Arguments follow ``keras.applications`` (keyword-only): ``include_top=False`` returns the
    hidden dense layer's spike counts; ``weights`` is ``None`` or the path of a ``.weights.h5``
    file; ``input_tensor`` a ``keras.Input`` to build on; ``input_shape`` defaults to
    ``(32, 32, 3)``; ``width_divisor=K`` divides every layer's width by K; ``neuron``
    (``"if"``, ``"lif"`` or a ``tk.neurons.Neuron``) is every spiking layer's neuron.

    Example:
      >>> vgg11(time_steps=2, width_divisor=8).output_shape
      (None, 10)
    """
    if input_shape is None and input_tensor is None:
        input_shape = (32, 32, 3)
    images, input_shape = image_input(name, input_shape, input_tensor)
    shape = check_options(input_shape, num_classes, time_steps, decode, mode, neuron)
    check_common(name, dropout=dropout, width_divisor=width_divisor, weights=weights)
    if shape[0] < 32 or shape[1] < 32:
        raise ValueError(f"{name}: input_shape {shape} is too small for five 2x2 poolings "
                         "(at least 32x32)")
    images = images if images is not None else keras.Input(shape, name="images")
    x = stem(images, shape, name=name, encoder=narrow(ENCODER, width_divisor),
             mean=CIFAR10_MEAN if include_preprocessing else None, std=CIFAR10_STD,
             time_steps=time_steps, mode=mode, neuron=neuron)
    convs = pools = 0
    for item in CONFIG:
        if item == "M":
            pools += 1
            x = tk.AveragePooling2D(2, mode=mode, name=f"pool{pools}")(x)
        else:
            convs += 1
            x = tk.TandemConv2D(narrow(Conv(item), width_divisor).filters, 3, mode=mode,
                                neuron=neuron, name=f"tandem_conv{convs}")(x)
    x = tk.TimeFlatten(name="flatten")(x)
    for i, units in enumerate(DENSE, start=1):
        x = tk.TandemDense(max(units // width_divisor, 1), mode=mode, neuron=neuron,
                           name=f"tandem_dense{i}")(x)
    outputs = readout(x, decode=decode, num_classes=num_classes, dropout=dropout, mode=mode,
                      neuron=neuron, include_top=include_top)
    return finish(images, outputs, name, weights)
