"""A small tandem SNN for scikit-learn's 8x8 handwritten digits: the offline demo model."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import keras

from models._builder import NEURON, Conv, build_classifier

# Pixel statistics of sklearn.datasets.load_digits() scaled to [0, 1] (values 0..16 / 16).
DIGITS_MEAN = (0.3053,)
DIGITS_STD = (0.3760,)

ENCODER = Conv(32, 3, 1)
CONVS = (Conv(64, 3, 2),)
DENSE = (128,)


def digits(
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
    dropout: float = 0.0,
    include_preprocessing: bool = True,
    width_divisor: int = 1,
    name: str = "digits",
) -> keras.Model:
    """Encoder conv 32; tandem conv 64 s2 (8x8 -> 4x4); tandem dense 128; 10 outputs.

    Trains to a few percent error in well under a minute on a laptop CPU. Takes the digit
    images scaled to ``[0, 255]`` (see ``common.datasets``).

    Arguments follow ``keras.applications`` (keyword-only): ``include_top=False`` returns
    the last hidden layer's spike counts instead of logits; ``weights`` is ``None`` or the
    path of a ``.weights.h5`` file; ``input_tensor`` a ``keras.Input`` to build on;
    ``input_shape`` defaults to ``(8, 8, 1)``; ``width_divisor=K`` divides every layer's
    width by K; ``neuron`` (``"if"``, ``"lif"`` or a ``tk.neurons.Neuron``) is every
    spiking layer's neuron.

    Example:
      >>> digits().output_shape
      (None, 10)
    """
    if input_shape is None and input_tensor is None:
        input_shape = (8, 8, 1)
    return build_classifier(
        name=name, input_shape=input_shape, num_classes=num_classes, time_steps=time_steps,
        decode=decode, mode=mode, encoder=ENCODER, convs=CONVS, dense=DENSE, dropout=dropout,
        mean=DIGITS_MEAN if include_preprocessing else None, std=DIGITS_STD,
        width_divisor=width_divisor, include_top=include_top, input_tensor=input_tensor,
        weights=weights, neuron=neuron,
    )
