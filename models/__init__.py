"""Model builders in the style of ``keras.applications``, and a name -> builder registry.

Every builder takes, keyword-only as ``keras.applications``, ``include_top``, ``weights``,
``input_tensor``, ``input_shape``, ``num_classes``, ``width_divisor``,
``time_steps``, ``decode="membrane"|"spike_count"|"spike_count_tie"|"spike_count_st"``, ``mode`` (one of ``tk.MODES``:
``"tandem"``, ``"ann"``, ``"quantized"``, ``"bptt"``), ``neuron`` (``"if"``, ``"lif"`` or a
``tk.neurons.Neuron``; default ``IF(initial_potential=0.5)``, method §10), ``dropout``,
``include_preprocessing`` and ``name``, and returns a plain functional ``keras.Model``
that maps images with pixel values in ``[0, 255]`` to float32 logits.

Example:
  >>> import models
  >>> model = models.build("cifarnet", time_steps=4, decode="spike_count")
  >>> sorted(models.BUILDERS)
  ['alexnet_cifar', 'alexnet_imagenet', 'cifarnet', 'digits', 'resnet20', 'vgg11']
"""
from __future__ import annotations

from typing import Any, Callable

import keras

from models.alexnet import alexnet_cifar, alexnet_imagenet
from models.cifarnet import cifarnet
from models.digits import digits
from models.resnet import resnet20
from models.vgg import vgg11

BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "cifarnet": cifarnet,
    "alexnet_cifar": alexnet_cifar,
    "alexnet_imagenet": alexnet_imagenet,
    "digits": digits,
    "resnet20": resnet20,
    "vgg11": vgg11,
}


def build(name: str, **kwargs: Any) -> keras.Model:
    """Builds the model registered under ``name`` with the builder's keyword arguments."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(BUILDERS))}")
    return BUILDERS[name](**kwargs)


__all__ = ["BUILDERS", "build", "cifarnet", "alexnet_cifar", "alexnet_imagenet", "digits", "resnet20",
           "vgg11"]
