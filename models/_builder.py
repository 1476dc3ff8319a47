"""One builder shared by every model: image -> encoder -> tandem layers -> readout.

Each model module (``cifarnet``, ``alexnet``, ``digits``) is a table of layers handed to
:func:`build_classifier`. The graph it builds, in the layer names that ``model.summary()``
shows::

    images -> normalize -> encoder_conv -> encoder_bn -> encoder   (method §2: analog conv, spikes)
           -> tandem_conv1 .. tandem_convN                          (method §3: TandemConv2D)
           -> flatten -> tandem_dense1 .. tandem_denseM             (TandemDense)
           -> readout                                               (method §4)

Readout, ``decode="membrane"``: ``spike_count -> dropout -> logits`` (a ``Dense`` on the
spike counts, the free aggregate membrane potential ``W c + b``).
``decode="spike_count"``: ``dropout -> output_neurons -> logits``, where
``output_neurons`` is a ``TandemDense`` without batch norm and ``logits`` its
``SpikeCount`` (integer logits in ``[0, T]``). Dropout drops whole neurons for the whole
window (``noise_shape=[batch, 1, features]``), i.e. it acts on the spike counts.
``decode="spike_count_st"``: ``dropout -> logits``, a ``tk.decoding.SpikeCountOutput``: the
same IF output neurons, trained with the straight-through coupling (gradient also for
silent and saturated output neurons) and predicting by spike count with ties broken by the
final membrane potential (logits ``c + g(V_end)``, see ``tandem_keras.decoding``).
``decode="spike_count_tie"``: the same layer with the paper's bounded-ReLU coupling: the
paper's training, with the final-potential tie rule in the logits.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import keras
import tensorflow as tf

import tandem_keras as tk

DECODES = ("membrane", "spike_count", "spike_count_tie", "spike_count_st")
#: The builders' default neuron: IF from ``V(0) = theta/2``, so that counts round the coupled
#: ANN's activation instead of flooring it (method §10; ``neuron="if"`` is the paper's IF).
NEURON = tk.neurons.IF(initial_potential=0.5)


@dataclasses.dataclass(frozen=True)
class Conv:
    """One 'same'-padded convolution of the table: filters, square kernel size, stride."""

    filters: int
    kernel_size: int = 3
    strides: int = 1


def check_options(
    input_shape: Sequence[int], num_classes: int, time_steps: int, decode: str, mode: str,
    neuron: Any = NEURON,
) -> tuple[int, int, int]:
    """Validates the keyword arguments shared by every builder; returns input_shape as a tuple.

    Raises ``ValueError`` with a message naming the bad argument.
    """
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be (height, width, channels) of positive ints, got {input_shape!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not isinstance(time_steps, int) or isinstance(time_steps, bool) or time_steps < 1:
        raise ValueError(f"time_steps must be an int >= 1, got {time_steps!r}")
    if decode not in DECODES:
        raise ValueError(f"decode must be one of {DECODES}, got {decode!r}")
    if mode not in tk.MODES:
        raise ValueError(f"mode must be one of {tk.MODES}, got {mode!r}")
    try:
        tk.neurons.get(neuron)
    except ValueError as error:
        raise ValueError(f"neuron: {error}") from None
    return shape


def narrow(conv: Conv, width_divisor: int) -> Conv:
    """``conv`` with ``filters // width_divisor`` filters (at least 1)."""
    return Conv(max(conv.filters // width_divisor, 1), conv.kernel_size, conv.strides)


def check_width_divisor(width_divisor: int) -> int:
    if isinstance(width_divisor, bool) or not isinstance(width_divisor, int) or width_divisor < 1:
        raise ValueError(f"width_divisor must be a positive int, got {width_divisor!r}")
    return width_divisor


def image_input(name: str, input_shape: Sequence[int] | None, input_tensor: Any):
    """``(images, input_shape)``: ``input_tensor`` (checked against ``input_shape``) or a new
    ``keras.Input`` named ``images``."""
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(f"{name}: input_tensor must be a Keras tensor (keras.Input), "
                             f"got {type(input_tensor).__name__}")
        tensor_shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(f"{name}: input_shape {tuple(input_shape)} differs from "
                             f"input_tensor's shape {tensor_shape}")
        return input_tensor, tensor_shape
    return None, input_shape


def check_common(name: str, *, dropout: float, width_divisor: int, weights: str | None) -> None:
    """The arguments every builder checks besides :func:`check_options`."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    check_width_divisor(width_divisor)
    if weights is not None and not (isinstance(weights, str) and os.path.isfile(weights)):
        raise ValueError(f"{name}: weights must be None or the path of a weights file, "
                         f"got {weights!r}")


def stem(images, shape: Sequence[int], *, name: str, encoder: Conv, mean, std, time_steps: int,
         mode: str, neuron: Any):
    """``images -> normalize -> encoder_conv -> encoder_bn -> encoder``: the spike train.

    ``mean``/``std``: per-channel normalization of images in ``[0, 1]`` scale (one value:
    every channel), the model taking pixel values in ``[0, 255]``; ``mean=None``: none. The
    encoder takes ``neuron`` if it is an IF neuron (its initial potential), else ``"if"``.
    """
    layers = keras.layers
    x = images
    if mean is not None:
        # Pixel values in [0, 255] -> (x / 255 - mean) / std, one Normalization layer;
        # one-channel statistics apply to every channel.
        channels = shape[-1]
        mean, std = (list(v) * channels if len(v) == 1 else list(v) for v in (mean, std))
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"{name}: normalization has {len(mean)} channels, images have {channels}")
        x = layers.Normalization(
            mean=[255.0 * m for m in mean],
            variance=[(255.0 * s) ** 2 for s in std],
            name="normalize",
        )(x)
    x = layers.Conv2D(
        encoder.filters, encoder.kernel_size, strides=encoder.strides, padding="same",
        use_bias=False, name="encoder_conv",
    )(x)
    # Same momentum as the tandem layers' fused BN (0.9): short runs need fresh moving statistics.
    # Under several replicas the batch statistics are synchronized (else each replica keeps its
    # own moving statistics); one replica keeps the exact single-device computation.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    x = layers.BatchNormalization(momentum=0.9, synchronized=replicas > 1, name="encoder_bn")(x)
    encoder_neuron = neuron if type(tk.neurons.get(neuron)) is tk.neurons.IF else "if"
    return tk.SpikeEncoder(time_steps, mode=mode, neuron=encoder_neuron, name="encoder")(x)


def readout(x, *, decode: str, num_classes: int, dropout: float, mode: str, neuron: Any,
            include_top: bool = True):
    """The logits from a ``[batch, T, features]`` train (spikes, or pooled currents): see the
    module docstring; ``include_top=False``: its time-sum (the spike counts)."""
    layers = keras.layers
    if not include_top:
        return tk.SpikeCount(dtype="float32", name="spike_count")(x)
    if decode == "membrane":
        x = tk.SpikeCount(name="spike_count")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        return layers.Dense(num_classes, dtype="float32", name="logits")(x)
    if dropout:
        x = layers.Dropout(dropout, noise_shape=(None, 1, None), name="dropout")(x)
    if decode == "spike_count":
        x = tk.TandemDense(num_classes, batch_norm=False, mode=mode, neuron=neuron,
                           name="output_neurons")(x)
        return tk.SpikeCount(dtype="float32", name="logits")(x)
    # "spike_count_tie", "spike_count_st"
    surrogate = "straight_through" if decode == "spike_count_st" else "bounded_relu"
    return tk.decoding.SpikeCountOutput(
        num_classes, surrogate=surrogate, tie_break="membrane", mode=mode, neuron=neuron,
        dtype="float32", name="logits")(x)


def finish(images, outputs, name: str, weights: str | None) -> keras.Model:
    """The functional model, with the weights file loaded if given."""
    model = keras.Model(images, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def build_classifier(
    *,
    name: str,
    input_shape: Sequence[int] | None,
    num_classes: int,
    time_steps: int,
    decode: str,
    mode: str,
    encoder: Conv,
    convs: Sequence[Conv],
    dense: Sequence[int],
    dropout: float,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    width_divisor: int = 1,
    include_top: bool = True,
    input_tensor: Any = None,
    weights: str | None = None,
    neuron: Any = NEURON,
) -> keras.Model:
    """Builds ``images -> logits`` from a layer table (see the module docstring).

    Args:
      name: model name.
      input_shape: ``(height, width, channels)`` of the images (``None``: taken from
        ``input_tensor``).
      num_classes: number of logits.
      time_steps: encoding window ``T``.
      decode: ``"membrane"``, ``"spike_count"``, ``"spike_count_tie"`` or
        ``"spike_count_st"`` (output decoding).
      mode: one of ``tk.MODES``; every tandem_keras layer is built in it.
      encoder: the analog convolution in front of the ``SpikeEncoder``.
      convs: the ``TandemConv2D`` layers, in order.
      dense: units of the hidden ``TandemDense`` layers, in order.
      dropout: rate of the dropout on the last hidden layer's spike counts (0 disables).
      mean, std: per-channel normalization of images in ``[0, 1]`` scale (one value: the
        same for every channel); the model takes pixel values in ``[0, 255]``. ``mean=None``
        leaves the images as they are.
      width_divisor: every layer's width (filters, units) divided by this, at least 1.
      include_top: with ``False``, no readout: the model returns the last hidden layer's
        spike counts ``[batch, units]`` (``decode`` and ``num_classes`` are then unused).
      input_tensor: a Keras tensor (``keras.Input``) to use as the image input.
      weights: ``None`` (random initialization) or the path of a weights file
        (``model.save_weights``'s ``.weights.h5``) to load.
      neuron: the neuron of every spiking layer (``"if"``, ``"lif"`` or a
        ``tk.neurons.Neuron``; see :func:`stem` for the encoder).

    Returns:
      A functional ``keras.Model`` whose output ``logits`` is float32 ``[batch, num_classes]``.
    """
    images, input_shape = image_input(name, input_shape, input_tensor)
    shape = check_options(input_shape, num_classes, time_steps, decode, mode, neuron)
    check_common(name, dropout=dropout, width_divisor=width_divisor, weights=weights)
    encoder = narrow(encoder, width_divisor)
    convs = [narrow(c, width_divisor) for c in convs]
    dense = [max(units // width_divisor, 1) for units in dense]
    images = images if images is not None else keras.Input(shape, name="images")
    x = stem(images, shape, name=name, encoder=encoder, mean=mean, std=std,
             time_steps=time_steps, mode=mode, neuron=neuron)
    for i, conv in enumerate(convs, start=1):
        x = tk.TandemConv2D(
            conv.filters, conv.kernel_size, strides=conv.strides, padding="same",
            mode=mode, neuron=neuron, name=f"tandem_conv{i}",
        )(x)
    x = tk.TimeFlatten(name="flatten")(x)
    for i, units in enumerate(dense, start=1):
        x = tk.TandemDense(units, mode=mode, neuron=neuron, name=f"tandem_dense{i}")(x)
    outputs = readout(x, decode=decode, num_classes=num_classes, dropout=dropout, mode=mode,
                      neuron=neuron, include_top=include_top)
    return finish(images, outputs, name, weights)
