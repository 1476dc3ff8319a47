"""What :func:`tandem_keras.convert` recognizes in a Keras ANN, and how it copies weights.

How each layer is read (:func:`keras_kind`: its kind's ``convert`` rule in the registry of
layer kinds, :mod:`tandem_keras.kinds`), the fused chain ``Conv2D/Dense (+ BatchNormalization)
(+ ReLU)`` (:func:`fused_chain`) and the tandem layer it becomes (:func:`tandem_layer`,
:func:`load_tandem_weights`: kernel times the input's scale, bias, gamma, beta, moving
statistics and epsilon of the BN).
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np

from tandem_keras import kinds
from tandem_keras.layers import TandemLayer

L = keras.layers

SUPPORTED = ("Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, ReLU "
             "(activation='relu', ReLU(), Activation('relu')), other activations after the readout, "
             "Add, Concatenate, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout, "
             "ZeroPadding2D, Rescaling, Normalization, InputLayer and tandem_keras layers")


def label(layer) -> str:
    return f"'{layer.name}' ({type(layer).__name__})"


def base(tensor) -> str:
    """The name of the layer that made the ANN's ``tensor`` (layers added after it take it)."""
    from tandem_keras._keras_internals import producer

    layer, _ = producer(tensor)
    return layer.name if layer is not None else "output"


def activation(layer) -> str:
    """The name of a layer's ``activation`` argument (``"linear"`` for none)."""
    act = getattr(layer, "activation", None)
    if act is None:
        return "linear"
    name = keras.activations.serialize(act)
    return name if isinstance(name, str) else str(name)


def keras_kind(layer) -> str:
    """How ``tk.convert`` reads ``layer`` (its kind's ``convert`` rule, :mod:`tandem_keras.kinds`):
    ``"weighted"``, ``"relu"``, ``"add"``, ..., ``"keep"`` (the library's layers), or
    ``"other"`` (not convertible)."""
    return kinds.field(layer, "convert") or "other"


def is_tandem_keras(layer) -> bool:
    """A layer of the library (or a subclass): copied into the SNN, its mode switched."""
    return keras_kind(layer) == "keep"


def is_weighted(layer) -> bool:
    """A layer whose kernel takes its input's scale (Keras's weighted layers, tandem layers)."""
    return kinds.role(layer) in ("weighted", "spiking_weighted") and not kinds.field(layer, "spike_inputs_only")


def is_spiking(layer) -> bool:
    """A layer with neurons and a threshold (encoder, tandem layer, TandemAdd)."""
    return kinds.has_neurons(layer)


def tandem_keras_domain(layer, domain_in: str) -> str:
    """The domain of a library layer's output (see ``build``): what its output carries."""
    return kinds.output_carry(layer, [kinds.Carry(domain_in)]).what or "analog"


_NEGATIVE = "has negative outputs, which spikes cannot carry; only ReLU converts"


def activation_refusal(layer) -> Optional[str]:
    """Why the activation ``layer`` does not become neurons (None: not an activation layer,
    or a plain ReLU): the reason a refusal names, e.g. ``"max_value=6: only an unbounded
    ReLU converts"``."""
    if isinstance(layer, L.ReLU):
        c = layer.get_config()
        if c.get("max_value") is not None:
            return (f"max_value={c['max_value']:g}: only an unbounded ReLU converts (the neurons' "
                    "rate is bounded by T spikes, not by a clipping value)")
        if c.get("negative_slope"):
            return f"negative_slope={c['negative_slope']:g}: a leaky ReLU {_NEGATIVE}"
        if c.get("threshold"):
            return f"threshold={c['threshold']:g}: only a ReLU with threshold 0 converts"
        return None
    if isinstance(layer, L.LeakyReLU):
        return f"negative_slope={layer.get_config().get('negative_slope', 0.3):g}: a leaky ReLU {_NEGATIVE}"
    if isinstance(layer, (L.ELU, L.PReLU)):
        return f"{type(layer).__name__} {_NEGATIVE}"
    if isinstance(layer, L.Softmax):
        return "a softmax inside the network does not convert; only ReLU does (the readout keeps its activation)"
    if isinstance(layer, L.Activation):
        name = activation(layer)
        if name in ("relu", "linear"):
            return None
        if name == "relu6":
            return "activation='relu6': only an unbounded ReLU converts"
        return (f"activation={name!r}: only ReLU converts inside the network (the readout keeps "
                "its activation)")
    return None


def refuse_activation(layer) -> None:
    """Raises the refusal of the activation ``layer`` (see :func:`activation_refusal`), if any."""
    from tandem_keras.conversion.build import ConversionError

    reason = activation_refusal(layer)
    if reason is not None:
        raise ConversionError(f"tk.convert cannot convert layer {label(layer)}: {reason}.")


def check_supported(layer, kind: str, analog: bool) -> None:
    from tandem_keras.conversion.build import ConversionError

    if kind == "other" or (kind == "activation" and not analog):
        refuse_activation(layer)
    if kind == "other":
        raise ConversionError(f"tk.convert cannot convert layer {label(layer)}: supported are {SUPPORTED}.")
    if kind == "activation" and not analog:
        raise ConversionError(f"{label(layer)} is an activation other than ReLU inside the network; "
                              "only ReLU neurons can be converted (the readout keeps its activation).")
    if kind == "rescaling" and not analog:
        raise ConversionError(f"{label(layer)} acts on spike trains; Rescaling and Normalization are "
                              "supported only before the first weighted layer.")


def copy_layer(layer, inputs, activation: Optional[str] = None, kernel_scale: Any = 1.0):
    """A copy of the Keras ``layer`` (same config and weights, ``activation`` replaced if
    given, the kernel times ``kernel_scale``: :func:`scaled`) called on ``inputs``."""
    config = layer.get_config()
    if activation is not None:
        config["activation"] = activation
    new = type(layer).from_config(config)
    out = new(inputs)
    new.set_weights(layer.get_weights())
    if np.ndim(kernel_scale) or kernel_scale != 1.0:   # the first kernel reads the input
        new.weights[0].assign(scaled(np.asarray(new.weights[0]), kernel_scale))
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
    """The tandem version of the Keras linear ``layer`` (+ ``bn``), not yet built: the layer's
    own config (its activation left to the neurons) with the tandem arguments."""
    from tandem_keras.conversion.build import ConversionError

    target = kinds.tandem_version(type(layer))
    if target is None:
        raise ConversionError(f"tk.convert cannot convert layer {label(layer)}: it has no tandem "
                              f"version; supported are {SUPPORTED}.")
    if isinstance(layer, L.Dense) and len(layer.input.shape) != 2:
        raise ConversionError(f"{label(layer)} acts on a rank-{len(layer.input.shape)} tensor; "
                              "flatten before a Dense inside the network.")
    config = layer.get_config()
    config.update(name=layer.name, activation=None, dtype=layer.dtype_policy.name,
                  threshold=threshold, neuron=neuron, batch_norm=bn is not None)
    if bn is not None:
        if not _bn_axis_ok(bn):
            raise ConversionError(f"{label(bn)} normalizes axis {bn.get_config().get('axis')}; only "
                                  "the channel axis (-1, channels_last) can be folded.")
        bconfig = bn.get_config()
        config.update(momentum=bconfig["momentum"], epsilon=bconfig["epsilon"])
    try:
        return target.from_config(config)
    except ValueError as error:
        raise ConversionError(f"{label(layer)}: {str(error).splitlines()[0]}") from None


def scaled(kernel: np.ndarray, scale) -> np.ndarray:
    """``kernel`` ``[..., C_in, C_out]`` times its input's scale: a number, or one per input
    channel (after a ``Concatenate`` of layers with different thresholds)."""
    if np.ndim(scale) == 0:
        return kernel * float(scale)
    return kernel * np.reshape(np.asarray(scale, kernel.dtype), (-1, 1))


def load_tandem_weights(new: TandemLayer, layer, bn, scale) -> None:
    """The ANN's weights into the built ``new``: its kernels (the first, which reads the
    input, times the input's ``scale``) and bias, and the BN's ``gamma`` (1 without
    ``scale``), ``beta`` (0 without ``center``) and moving statistics."""
    weights = layer.get_weights()
    weights[0] = scaled(weights[0], scale)
    for variable, value in zip(new.weights, weights):   # Keras's own weights come first
        variable.assign(value)
    if bn is not None:
        channels = new.gamma.shape
        new.gamma.assign(np.asarray(bn.gamma) if bn.scale else np.ones(channels))
        new.beta.assign(np.asarray(bn.beta) if bn.center else np.zeros(channels))
        new.moving_mean.assign(np.asarray(bn.moving_mean))
        new.moving_variance.assign(np.asarray(bn.moving_variance))
