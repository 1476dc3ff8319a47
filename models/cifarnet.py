"""CIFARNet (Fig. 6 of the paper): the authors' CIFAR-10 network."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import keras

from models._builder import NEURON, Conv, build_classifier

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)

ENCODER = Conv(128, 3, 1)
CONVS = (Conv(256, 3, 2), Conv(512, 3, 2), Conv(1024, 3, 1), Conv(512, 3, 1))
DENSE = (1024,)


def cifarnet(
    *,
    include_top: bool = True,
    weights: Optional[str] = None,
    input_tensor: Any = None,
    input_shape: Optional[Sequence[int]] = None,
    num_classes: int = 10,
    time_steps: int = 10,
    decode: str = "membrane",
    mode: str = "tandem",
    neuron: Any = NEURON,
    dropout: float = 0.2,
    include_preprocessing: bool = True,
    width_divisor: int = 1,
    name: str = "cifarnet",
) -> keras.Model:
    """CIFARNet: encoder conv 128; tandem conv 256 s2, 512 s2, 1024, 512; dense 1024; 10.

    All convolutions 3x3 'same' with batch norm, downsampling by stride 2, no pooling;
    dropout 0.2 on the spike counts of the dense layer. The model takes images with pixel
    values in ``[0, 255]`` and normalizes them with the CIFAR-10 mean and std unless
    ``include_preprocessing=False``. ``width_divisor=8`` is the width-reduced CIFARNet of
    the CPU benchmarks.

    Arguments follow ``keras.applications`` (keyword-only): ``include_top=False`` returns
    the last hidden layer's spike counts instead of logits; ``weights`` is ``None`` or the
    path of a ``.weights.h5`` file; ``input_tensor`` a ``keras.Input`` to build on;
    ``input_shape`` defaults to ``(32, 32, 3)``. ``width_divisor=K`` divides every layer's width by
    K (the same layers otherwise); ``neuron`` (``"if"``, ``"lif"`` or a ``tk.neurons.Neuron``) is
    every spiking layer's neuron.

    Example:
      >>> model = cifarnet(time_steps=4, mode="ann")
      >>> model.output_shape
      (None, 10)
    """
    if input_shape is None and input_tensor is None:
        input_shape = (32, 32, 3)
    return build_classifier(
        name=name, input_shape=input_shape, num_classes=num_classes, time_steps=time_steps,
        decode=decode, mode=mode, encoder=ENCODER, convs=CONVS, dense=DENSE, dropout=dropout,
        mean=CIFAR10_MEAN if include_preprocessing else None, std=CIFAR10_STD,
        width_divisor=width_divisor, include_top=include_top, input_tensor=input_tensor,
        weights=weights, neuron=neuron,
    )
