"""What :func:`tandem_keras.convert` recognizes in a Keras ANN, and how it copies weights.

Layer kinds (:func:`keras_kind`), the fused chain ``Conv2D/Dense (+ BatchNormalization)
(+ ReLU)`` (:func:`fused_chain`) and the tandem layer it becomes (:func:`tandem_layer`,
:func:`load_tandem_weights`: kernel times the input's scale, bias, gamma, beta, moving
statistics and epsilon of the BN).
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np

from tandem_keras.layers import (SpikeCount, SpikeEncoder, TandemAdd, TandemConv2D, TandemDense,
                                 TandemLayer, TimeFlatten)

L = keras.layers

#: the Keras layers tk.convert takes, and the kind it reads each as
KINDS = (
    (L.Conv2D, "weighted"), (L.Dense, "weighted"), (L.BatchNormalization, "batch_norm"),
    (L.Add, "add"), (L.MaxPooling2D, "max_pool"), (L.AveragePooling2D, "avg_pool"),
    (L.GlobalAveragePooling2D, "global_avg_pool"), (L.Flatten, "flatten"), (L.Dropout, "dropout"),
    (L.ZeroPadding2D, "zero_padding"), (L.Rescaling, "rescaling"), (L.Normalization, "rescaling"),
    (L.InputLayer, "input"), (L.Identity, "identity"),
)
SUPPORTED = ("Conv2D, Dense, BatchNormalization, ReLU (activation='relu', ReLU(), Activation('relu')), "
             "other activations after the readout, "
             "Add, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout, "
             "ZeroPadding2D, Rescaling, Normalization, InputLayer and tandem_keras layers")


def label(layer) -> str:
    return f"'{layer.name}' ({type(layer).__name__})"


def activation(layer) -> str:
    """The name of a layer's ``activation`` argument (``"linear"`` for none)."""
    act = getattr(layer, "activation", None)
    if act is None:
        return "linear"
    name = keras.activations.serialize(act)
    return name if isinstance(name, str) else str(name)


def _is_relu_layer(layer) -> bool:
    if isinstance(layer, L.ReLU):
        c = layer.get_config()
        return c.get("max_value") is None and not c.get("negative_slope") and not c.get("threshold")
    return isinstance(layer, L.Activation) and activation(layer) == "relu"


def keras_kind(layer) -> str:
    """``"weighted"``, ``"relu"``, ``"add"``, ... (:data:`KINDS`), or ``"other"``."""
    if _is_relu_layer(layer):
        return "relu"
    if isinstance(layer, L.Activation) and activation(layer) == "linear":
        return "identity"
    if isinstance(layer, (L.Activation, L.Softmax)):
        return "activation"   # another activation: exact on analog values (a readout's softmax)
    for cls, kind in KINDS:
        if type(layer) is cls:
            return kind
    return "other"


def is_tandem_keras(layer) -> bool:
    return getattr(type(layer), "__module__", "").startswith("tandem_keras")


def is_weighted(layer) -> bool:
    return isinstance(layer, TandemLayer) or (not is_tandem_keras(layer) and keras_kind(layer) == "weighted")


def is_spiking(layer) -> bool:
    """A tandem_keras layer with neurons and a threshold (encoder, tandem layer, TandemAdd)."""
    config = layer.get_config()
    return "threshold" in config and (not isinstance(layer, TandemLayer) or layer.neuron is not None)


def tandem_keras_domain(layer, domain_in: str) -> str:
    """The domain of a tandem_keras layer's output (see ``build``)."""
    if isinstance(layer, SpikeCount):
        return "counts"
    if isinstance(layer, TimeFlatten):
        return domain_in
    if isinstance(layer, (SpikeEncoder, TandemAdd)):
        return "spikes"
    if isinstance(layer, TandemLayer):
        if len(layer.output.shape) == 2:  # an output layer that decodes (SpikeCountOutput)
            return "analog"
        return "spikes" if layer.neuron is not None else "current"
    name = type(layer).__name__
    if name == "MaxPooling2D":
        return "spikes"
    if name in ("AveragePooling2D", "GlobalAveragePooling2D"):
        return "current"
    return "analog"


def check_supported(layer, kind: str, analog: bool) -> None:
    from tandem_keras.conversion.build import ConversionError

    if kind == "other":
        raise ConversionError(f"tk.convert cannot convert layer {label(layer)}: supported are {SUPPORTED}.")
    if kind == "activation" and not analog:
        raise ConversionError(f"{label(layer)} is an activation other than ReLU inside the network; "
                              "only ReLU neurons can be converted (the readout keeps its activation).")
    if kind == "rescaling" and not analog:
        raise ConversionError(f"{label(layer)} acts on spike trains; Rescaling and Normalization are "
                              "supported only before the first weighted layer.")


def copy_layer(layer, inputs, activation: Optional[str] = None, kernel_scale: float = 1.0):
    """A copy of the Keras ``layer`` (same config and weights, ``activation`` replaced if
    given, the kernel times ``kernel_scale``) called on ``inputs``; returns its output."""
    config = layer.get_config()
    if activation is not None:
        config["activation"] = activation
    new = type(layer).from_config(config)
    out = new(inputs)
    new.set_weights(layer.get_weights())
    if kernel_scale != 1.0:
        new.kernel.assign(np.asarray(new.kernel) * kernel_scale)
    return out


def fused_chain(walk, node, layer):
    """``(bn node | None, relu node | "inline" | None, last node)`` of ``Conv/Dense (+BN) (+ReLU)``
    starting at ``node``, each link the sole reader of the one before."""
    from tandem_keras.conversion.build import ConversionError

    act = activation(layer)
    if act == "relu":
        return None, "inline", node
    bn = relu = None
    end = node
    if act == "linear":
        nxt = walk.sole_consumer(end.outputs[0])
        if nxt is not None and keras_kind(nxt.operation) == "batch_norm":
            bn = end = nxt
        nxt = walk.sole_consumer(end.outputs[0])
        if nxt is not None and keras_kind(nxt.operation) == "relu":
            relu = end = nxt
    elif walk.reaches_weights.get(id(node), False):
        raise ConversionError(f"{label(layer)} has activation={act!r}; inside the network only ReLU "
                              "is supported (the readout keeps its activation).")
    return bn, relu, end


def _bn_axis_ok(bn) -> bool:
    axis = bn.get_config().get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    rank = len(bn.input.shape)
    return axis in (-1, rank - 1)


def tandem_layer(layer, bn, *, threshold: float, neuron: Any) -> TandemLayer:
    """The TandemConv2D / TandemDense for ``layer`` (+ ``bn``), not yet built."""
    from tandem_keras.conversion.build import ConversionError

    config = layer.get_config()
    common = dict(name=layer.name, threshold=threshold, neuron=neuron, batch_norm=bn is not None,
                  use_bias=config.get("use_bias", True), dtype=layer.dtype_policy.name,
                  kernel_initializer=config.get("kernel_initializer", "glorot_uniform"),
                  bias_initializer=config.get("bias_initializer", "zeros"),
                  kernel_regularizer=config.get("kernel_regularizer"),
                  bias_regularizer=config.get("bias_regularizer"))
    if bn is not None:
        if not _bn_axis_ok(bn):
            raise ConversionError(f"{label(bn)} normalizes axis {bn.get_config().get('axis')}; only "
                                  "the channel axis (-1, channels_last) can be folded.")
        bconfig = bn.get_config()
        common.update(momentum=bconfig["momentum"], epsilon=bconfig["epsilon"])
    if isinstance(layer, L.Dense):
        if len(layer.input.shape) != 2:
            raise ConversionError(f"{label(layer)} acts on a rank-{len(layer.input.shape)} tensor; "
                                  "flatten before a Dense inside the network.")
        return TandemDense(config["units"], **common)
    if config.get("data_format", "channels_last") != "channels_last" or config.get("groups", 1) != 1:
        raise ConversionError(f"{label(layer)}: only channels_last convolutions with groups=1 can "
                              "be converted.")
    return TandemConv2D(config["filters"], config["kernel_size"], strides=config["strides"],
                        padding=config["padding"], dilation_rate=config["dilation_rate"], **common)


def load_tandem_weights(new: TandemLayer, layer, bn, scale: float) -> None:
    """The ANN's weights into the built ``new``: ``W * scale``, ``b``, and the BN's
    ``gamma`` (1 without ``scale``), ``beta`` (0 without ``center``) and moving statistics."""
    new.kernel.assign(np.asarray(layer.kernel) * scale)
    if new.use_bias:
        new.bias.assign(np.asarray(layer.bias))
    if bn is not None:
        channels = new.gamma.shape
        new.gamma.assign(np.asarray(bn.gamma) if bn.scale else np.ones(channels))
        new.beta.assign(np.asarray(bn.beta) if bn.center else np.zeros(channels))
        new.moving_mean.assign(np.asarray(bn.moving_mean))
        new.moving_variance.assign(np.asarray(bn.moving_variance))
