"""One builder shared by every model: image -> encoder -> tandem layers -> readout.

Each model module (``cifarnet``, ``alexnet``, ``digits``) is a table of layers handed to
:func:`build_classifier`. The graph it builds, in the layer names that ``model.summary()``
shows::

    images -> normalize -> encoder_conv -> encoder_bn -> encoder   (SPEC 2: analog conv, spikes)
           -> tandem_conv1 .. tandem_convN                          (SPEC 3: TandemConv2D)
           -> flatten -> tandem_dense1 .. tandem_denseM             (TandemDense)
           -> readout                                               (SPEC 4)

Readout, ``decode="membrane"``: ``spike_count -> dropout -> logits`` (a ``Dense`` on the
spike counts, the free aggregate membrane potential ``W c + b``).
``decode="spike_count"``: ``dropout -> output_neurons -> logits``, where
``output_neurons`` is a ``TandemDense`` without batch norm and ``logits`` its
``SpikeCount`` (integer logits in ``[0, T]``). Dropout drops whole neurons for the whole
window (``noise_shape=[batch, 1, features]``), i.e. it acts on the spike counts.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import keras

import tandem_keras as tk

DECODES = ("membrane", "spike_count")


@dataclasses.dataclass(frozen=True)
class Conv:
    """One 'same'-padded convolution of the table: filters, square kernel size, stride."""

    filters: int
    kernel_size: int = 3
    strides: int = 1


def check_options(
    input_shape: Sequence[int], num_classes: int, time_steps: int, decode: str, mode: str
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
    return shape


def build_classifier(
    *,
    name: str,
    input_shape: Sequence[int],
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
) -> keras.Model:
    """Builds ``images -> logits`` from a layer table (see the module docstring).

    Args:
      name: model name.
      input_shape: ``(height, width, channels)`` of the images.
      num_classes: number of logits.
      time_steps: encoding window ``T``.
      decode: ``"membrane"`` or ``"spike_count"`` (SPEC 4).
      mode: one of ``tk.MODES``; every tandem_keras layer is built in it.
      encoder: the analog convolution in front of the ``SpikeEncoder``.
      convs: the ``TandemConv2D`` layers, in order.
      dense: units of the hidden ``TandemDense`` layers, in order.
      dropout: rate of the dropout on the last hidden layer's spike counts (0 disables).
      mean, std: per-channel normalization of images in ``[0, 1]`` scale (one value: the
        same for every channel); the model takes pixel values in ``[0, 255]``. ``mean=None``
        leaves the images as they are.

    Returns:
      A functional ``keras.Model`` whose output ``logits`` is float32 ``[batch, num_classes]``.
    """
    shape = check_options(input_shape, num_classes, time_steps, decode, mode)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    layers = keras.layers
    images = keras.Input(shape, name="images")
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
    x = layers.BatchNormalization(momentum=0.9, name="encoder_bn")(x)
    x = tk.SpikeEncoder(time_steps, mode=mode, name="encoder")(x)
    for i, conv in enumerate(convs, start=1):
        x = tk.TandemConv2D(
            conv.filters, conv.kernel_size, strides=conv.strides, padding="same",
            mode=mode, name=f"tandem_conv{i}",
        )(x)
    x = tk.TimeFlatten(name="flatten")(x)
    for i, units in enumerate(dense, start=1):
        x = tk.TandemDense(units, mode=mode, name=f"tandem_dense{i}")(x)
    if decode == "membrane":
        x = tk.SpikeCount(name="spike_count")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        logits = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    else:
        if dropout:
            x = layers.Dropout(dropout, noise_shape=(None, 1, None), name="dropout")(x)
        x = tk.TandemDense(num_classes, batch_norm=False, mode=mode, name="output_neurons")(x)
        logits = tk.SpikeCount(dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name=name)
