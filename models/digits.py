"""A small tandem SNN for scikit-learn's 8x8 handwritten digits: the offline demo model."""
from __future__ import annotations

from typing import Sequence

import keras

from models._builder import Conv, build_classifier

# Pixel statistics of sklearn.datasets.load_digits() scaled to [0, 1] (values 0..16 / 16).
DIGITS_MEAN = (0.3053,)
DIGITS_STD = (0.3760,)

ENCODER = Conv(32, 3, 1)
CONVS = (Conv(64, 3, 2),)
DENSE = (128,)


def digits(
    input_shape: Sequence[int] = (8, 8, 1),
    num_classes: int = 10,
    time_steps: int = 4,
    decode: str = "membrane",
    mode: str = "tandem",
    dropout: float = 0.0,
    include_preprocessing: bool = True,
    name: str = "digits",
) -> keras.Model:
    """Encoder conv 32; tandem conv 64 s2 (8x8 -> 4x4); tandem dense 128; 10 outputs.

    Trains to a few percent error in well under a minute on a laptop CPU. Takes the digit
    images scaled to ``[0, 255]`` (see ``train.data``).

    Example:
      >>> digits().output_shape
      (None, 10)
    """
    return build_classifier(
        name=name, input_shape=input_shape, num_classes=num_classes, time_steps=time_steps,
        decode=decode, mode=mode, encoder=ENCODER, convs=CONVS, dense=DENSE, dropout=dropout,
        mean=DIGITS_MEAN if include_preprocessing else None, std=DIGITS_STD,
    )
