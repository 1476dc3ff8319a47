"""CIFARNet (SPEC 7, Fig. 6 of the paper): the authors' CIFAR-10 network."""
from __future__ import annotations

from typing import Sequence

import keras

from models._builder import Conv, build_classifier

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)

ENCODER = Conv(128, 3, 1)
CONVS = (Conv(256, 3, 2), Conv(512, 3, 2), Conv(1024, 3, 1), Conv(512, 3, 1))
DENSE = (1024,)


def cifarnet(
    input_shape: Sequence[int] = (32, 32, 3),
    num_classes: int = 10,
    time_steps: int = 10,
    decode: str = "membrane",
    mode: str = "tandem",
    dropout: float = 0.2,
    include_preprocessing: bool = True,
    width_divisor: int = 1,
    name: str = "cifarnet",
) -> keras.Model:
    """CIFARNet: encoder conv 128; tandem conv 256 s2, 512 s2, 1024, 512; dense 1024; 10.

    All convolutions 3x3 'same' with batch norm, downsampling by stride 2, no pooling;
    dropout 0.2 on the spike counts of the dense layer. The model takes images with pixel
    values in ``[0, 255]`` and normalizes them with the CIFAR-10 mean and std (SPEC 8)
    unless ``include_preprocessing=False``. ``width_divisor=K`` divides every layer's width
    by K (the same layers otherwise): the width-reduced CIFARNet of the CPU benchmarks.

    Example:
      >>> model = cifarnet(time_steps=4, mode="ann")
      >>> model.output_shape
      (None, 10)
    """
    if isinstance(width_divisor, bool) or not isinstance(width_divisor, int) or width_divisor < 1:
        raise ValueError(f"width_divisor must be a positive int, got {width_divisor!r}")

    def narrow(conv: Conv) -> Conv:
        return Conv(max(conv.filters // width_divisor, 1), conv.kernel_size, conv.strides)

    return build_classifier(
        name=name, input_shape=input_shape, num_classes=num_classes, time_steps=time_steps,
        decode=decode, mode=mode, encoder=narrow(ENCODER), convs=[narrow(c) for c in CONVS],
        dense=[max(units // width_divisor, 1) for units in DENSE], dropout=dropout,
        mean=CIFAR10_MEAN if include_preprocessing else None, std=CIFAR10_STD,
    )
