"""He et al.'s CIFAR ResNet (depth 6n+2; ResNet-20 by default) as a tandem SNN.

"Deep Residual Learning for Image Recognition" (2016), Section 4.2: a 3x3 convolution with
16 filters, three stages of ``n`` basic blocks with 16, 32 and 64 filters (the first block
of stages 2 and 3 downsamples by stride 2), global average pooling and the classifier.
Shortcuts are identities, and 1x1 convolutions with batch norm where the shape changes
(option B). As a tandem SNN (method §3, residual neuron; §7)::

    images -> normalize -> encoder_conv -> encoder_bn -> encoder          (the stem's conv: analog)
    block:  x -> stage{s}_block{b}_conv1 (TandemConv2D, neurons)
              -> stage{s}_block{b}_conv2 (TandemConv2D, neuron=None: its current)
            shortcut: x (identity spikes) | stage{s}_block{b}_shortcut (1x1, BN, neuron=None)
            -> stage{s}_block{b}_add (TandemAdd: the neuron after the addition)
    readout: spike_count -> pool (keras GlobalAveragePooling2D) -> dropout -> logits
             (membrane), or pool (tk.GlobalAveragePooling2D, a current) -> output neurons

The stages are a ``stack_fn`` as in ``keras.applications.resnet``.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import keras

import tandem_keras as tk
from models._builder import (NEURON, Conv, check_common, check_options, finish, image_input, narrow,
                             readout, stem)
from models.cifarnet import CIFAR10_MEAN, CIFAR10_STD

FILTERS = (16, 32, 64)


def basic_block(x, filters: int, stride: int, *, name: str, mode: str, neuron: Any):
    """One residual block: two 3x3 tandem convolutions, the second synapse-only, added to the
    shortcut's current (1x1 projection with BN) or spikes (identity) by ``TandemAdd``."""
    h = tk.TandemConv2D(filters, 3, strides=stride, mode=mode, neuron=neuron, name=f"{name}_conv1")(x)
    h = tk.TandemConv2D(filters, 3, mode=mode, neuron=None, name=f"{name}_conv2")(h)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = tk.TandemConv2D(filters, 1, strides=stride, mode=mode, neuron=None,
                                   name=f"{name}_shortcut")(x)
    else:
        shortcut = x
    return tk.TandemAdd(mode=mode, neuron=neuron, name=f"{name}_add")([h, shortcut])


def stack(x, filters: int, blocks: int, stride: int, *, name: str, mode: str, neuron: Any):
    """``blocks`` basic blocks, the first with ``stride``."""
    for b in range(1, blocks + 1):
        x = basic_block(x, filters, stride if b == 1 else 1, name=f"{name}_block{b}", mode=mode,
                        neuron=neuron)
    return x


def resnet20(
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
    depth: int = 20,
    dropout: float = 0.0,
    include_preprocessing: bool = True,
    width_divisor: int = 1,
    name: Optional[str] = None,
) -> keras.Model:
    """CIFAR ResNet of ``depth = 6n + 2`` layers (20, 32, 44, 56, 110, ...) as a tandem SNN.

    Encoder conv 16 (analog) -> ``n`` blocks of 16, 32 s2, 64 s2 filters -> global average
    pooling -> ``num_classes``. Every convolution 3x3 'same' with batch norm, shortcuts 1x1
    with batch norm where the shape changes. Images in ``[0, 255]``, normalized with the
    CIFAR-10 statistics inside the model (unless ``include_preprocessing=False``).

    Arguments follow ``keras.applications`` (keyword-only): ``include_top=False`` returns the
    last block's spike counts ``[batch, H/4, W/4, 64]``; ``weights`` is ``None`` or the path of
    a ``.weights.h5`` file; ``input_tensor`` a ``keras.Input`` to build on; ``input_shape``
    defaults to ``(32, 32, 3)``; ``width_divisor=K`` divides every layer's width by K;
    ``neuron`` (``"if"``, ``"lif"`` or a ``tk.neurons.Neuron``) is every spiking layer's
    neuron; ``depth`` picks the family member (name ``resnet{depth}`` by default).

    Example:
      >>> model = resnet20(time_steps=2, width_divisor=4)
      >>> model.output_shape, len([l for l in model.layers if isinstance(l, tk.TandemAdd)])
      ((None, 10), 9)
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth!r}")
    name = name or f"resnet{depth}"
    if input_shape is None and input_tensor is None:
        input_shape = (32, 32, 3)
    images, input_shape = image_input(name, input_shape, input_tensor)
    shape = check_options(input_shape, num_classes, time_steps, decode, mode, neuron)
    check_common(name, dropout=dropout, width_divisor=width_divisor, weights=weights)
    widths = [narrow(Conv(f), width_divisor).filters for f in FILTERS]
    images = images if images is not None else keras.Input(shape, name="images")
    x = stem(images, shape, name=name, encoder=Conv(widths[0]),
             mean=CIFAR10_MEAN if include_preprocessing else None, std=CIFAR10_STD,
             time_steps=time_steps, mode=mode, neuron=neuron)
    for s, filters in enumerate(widths, start=1):
        x = stack(x, filters, (depth - 2) // 6, 1 if s == 1 else 2, name=f"stage{s}", mode=mode,
                  neuron=neuron)
    if not include_top:
        outputs = tk.SpikeCount(dtype="float32", name="spike_count")(x)
    elif decode == "membrane":
        x = tk.SpikeCount(name="spike_count")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        outputs = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    else:
        x = tk.GlobalAveragePooling2D(mode=mode, name="pool")(x)
        outputs = readout(x, decode=decode, num_classes=num_classes, dropout=dropout, mode=mode,
                          neuron=neuron)
    return finish(images, outputs, name, weights)
