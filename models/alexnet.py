"""AlexNet as a tandem SNN: the CIFAR-10 variant of the paper's Table II and the ImageNet one."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import keras

from models._builder import NEURON, Conv, build_classifier
from models.cifarnet import CIFAR10_MEAN, CIFAR10_STD

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CIFAR_ENCODER = Conv(96, 3, 1)
CIFAR_CONVS = (Conv(256, 3, 2), Conv(384, 3, 2), Conv(384, 3, 1), Conv(256, 3, 1))
CIFAR_DENSE = (1024,)

IMAGENET_ENCODER = Conv(96, 11, 4)
IMAGENET_CONVS = (Conv(256, 5, 2), Conv(384, 3, 2), Conv(384, 3, 1), Conv(256, 3, 2))
IMAGENET_DENSE = (4096, 4096)


def alexnet_cifar(
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
    dropout: float = 0.0,
    include_preprocessing: bool = True,
    width_divisor: int = 1,
    name: str = "alexnet_cifar",
) -> keras.Model:
    """AlexNet for CIFAR-10: encoder conv 96; tandem conv 256 s2, 384 s2, 384, 256; dense 1024; 10.

    3x3 'same' convolutions with batch norm, no pooling. Images in ``[0, 255]``, normalized
    with the CIFAR-10 statistics inside the model.

    Arguments follow ``keras.applications`` (keyword-only): ``include_top=False`` returns
    the last hidden layer's spike counts instead of logits; ``weights`` is ``None`` or the
    path of a ``.weights.h5`` file; ``input_tensor`` a ``keras.Input`` to build on;
    ``input_shape`` defaults to ``(32, 32, 3)``; ``width_divisor=K`` divides every layer's
    width by K; ``neuron`` (``"if"``, ``"lif"`` or a ``tk.neurons.Neuron``) is every
    spiking layer's neuron.

    Example:
      >>> alexnet_cifar(time_steps=5).output_shape
      (None, 10)
    """
    if input_shape is None and input_tensor is None:
        input_shape = (32, 32, 3)
    return build_classifier(
        name=name, input_shape=input_shape, num_classes=num_classes, time_steps=time_steps,
        decode=decode, mode=mode, encoder=CIFAR_ENCODER, convs=CIFAR_CONVS, dense=CIFAR_DENSE,
        dropout=dropout, mean=CIFAR10_MEAN if include_preprocessing else None, std=CIFAR10_STD,
        width_divisor=width_divisor, include_top=include_top, input_tensor=input_tensor,
        weights=weights, neuron=neuron,
    )


def alexnet_imagenet(
    *,
    include_top: bool = True,
    weights: Optional[str] = None,
    input_tensor: Any = None,
    input_shape: Optional[Sequence[int]] = None,
    num_classes: int = 1000,
    time_steps: int = 10,
    decode: str = "membrane",
    mode: str = "tandem",
    neuron: Any = NEURON,
    dropout: float = 0.0,
    include_preprocessing: bool = True,
    width_divisor: int = 1,
    name: str = "alexnet_imagenet",
) -> keras.Model:
    """AlexNet for ImageNet, pooling replaced by stride-2 convolutions, batch norm added.

    Encoder conv 96 11x11 s4; tandem conv 256 5x5 s2, 384 3x3 s2, 384 3x3, 256 3x3 s2;
    tandem dense 4096, 4096; 1000 outputs. All 'same' padding (224 -> 56 -> 28 -> 14 -> 14
    -> 7). Images in ``[0, 255]``, normalized with the usual ImageNet mean and std.

    Arguments follow ``keras.applications`` (keyword-only): ``include_top=False`` returns
    the last hidden layer's spike counts instead of logits; ``weights`` is ``None`` or the
    path of a ``.weights.h5`` file; ``input_tensor`` a ``keras.Input`` to build on;
    ``input_shape`` defaults to ``(224, 224, 3)``; ``width_divisor=K`` divides every layer's
    width by K; ``neuron`` (``"if"``, ``"lif"`` or a ``tk.neurons.Neuron``) is every
    spiking layer's neuron.

    Example:
      >>> alexnet_imagenet(input_shape=(64, 64, 3), num_classes=5).output_shape
      (None, 5)
    """
    if input_shape is None and input_tensor is None:
        input_shape = (224, 224, 3)
    return build_classifier(
        name=name, input_shape=input_shape, num_classes=num_classes, time_steps=time_steps,
        decode=decode, mode=mode, encoder=IMAGENET_ENCODER, convs=IMAGENET_CONVS,
        dense=IMAGENET_DENSE, dropout=dropout,
        mean=IMAGENET_MEAN if include_preprocessing else None, std=IMAGENET_STD,
        width_divisor=width_divisor, include_top=include_top, input_tensor=input_tensor,
        weights=weights, neuron=neuron,
    )
