"""A layer's linear map as a SynOps op spec (:mod:`tandem_keras.synops.ops`), read from the
layer's own arguments (Keras's names: ``filters``, ``kernel_size``, ``strides``, ``padding``,
``dilation_rate``, ``depth_multiplier``, ``units``, ``pool_size``, ``axis``).

The registry of layer kinds (:mod:`tandem_keras.kinds`) refers to these for Keras's layers;
a tandem layer built on a Keras class reads its arguments the same way. ``input_shape`` is
one example's, without batch and time axes.
"""

from __future__ import annotations

from typing import Any, Sequence


def _ints(values: Sequence[Any]) -> list[int]:
    return [int(v) for v in values]


def _channels_last(layer: Any, input_shape: Sequence[int], rank: int) -> None:
    if len(input_shape) != rank + 1 or getattr(layer, "data_format", "channels_last") != "channels_last":
        raise NotImplementedError(f"layer {layer.name!r}: only channels-last {rank}D maps "
                                  f"({ {1: '[L, C]', 2: '[H, W, C]'}.get(rank, '[D, H, W, C]') }) are counted, got "
                                  f"input {list(input_shape)}")


def _window(layer: Any) -> dict:
    spec = {"kernel_size": _ints(layer.kernel_size), "strides": _ints(layer.strides),
            "padding": str(layer.padding).lower()}
    dilation = _ints(getattr(layer, "dilation_rate", (1,) * len(layer.kernel_size)))
    if any(d != 1 for d in dilation):
        spec["dilation_rate"] = dilation
    return spec


def conv_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of a channels-last convolution (``Conv1D``: ``conv1d``, ``Conv2D``: ``conv2d``)."""
    rank = len(layer.kernel_size)
    _channels_last(layer, input_shape, rank)
    if getattr(layer, "groups", 1) != 1:
        raise NotImplementedError(f"layer {layer.name!r}: grouped convolutions are not counted")
    return {"type": f"conv{rank}d", "input_shape": _ints(input_shape), "filters": int(layer.filters),
            **_window(layer)}


def depthwise_conv2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of a channels-last depthwise convolution (``DepthwiseConv2D``)."""
    _channels_last(layer, input_shape, 2)
    return {"type": "depthwise_conv2d", "input_shape": _ints(input_shape),
            "depth_multiplier": int(layer.depth_multiplier), **_window(layer)}


def separable_conv2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of a channels-last separable convolution (``SeparableConv2D``): one linear map,
    the depthwise then the pointwise convolution."""
    _channels_last(layer, input_shape, 2)
    return {"type": "separable_conv2d", "input_shape": _ints(input_shape),
            "filters": int(layer.filters), "depth_multiplier": int(layer.depth_multiplier),
            **_window(layer)}


def dense_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of a dense layer (``Dense``, ``TandemDense``)."""
    return {"type": "dense", "input_shape": _ints(input_shape), "units": int(layer.units)}


def identity_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """One synapse per neuron: a spike train into ``TandemAdd`` (weight ``w_i``)."""
    return {"type": "identity", "input_shape": _ints(input_shape)}


def avg_pool2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of 2D average pooling (``AveragePooling2D``; ``tk.AveragePooling2D``)."""
    _channels_last(layer, input_shape, 2)
    pool = _ints(layer.pool_size)
    return {"type": "avg_pool2d", "input_shape": _ints(input_shape), "pool_size": pool,
            "strides": _ints(layer.strides or pool), "padding": str(layer.padding).lower()}


def global_avg_pool2d_spec(layer: Any, input_shape: Sequence[int]) -> dict:
    """Spec of global average pooling over H and W (``GlobalAveragePooling2D``)."""
    _channels_last(layer, input_shape, 2)
    return {"type": "global_avg_pool2d", "input_shape": _ints(input_shape),
            "keepdims": bool(getattr(layer, "keepdims", False))}


def sum_merge(layer: Any, input_shapes: Sequence[Sequence[int]], index: int,
              leading: int) -> None:
    """``Add``, ``Average``: every input reaches the same neurons (an identity)."""
    return None


def concat_merge(layer: Any, input_shapes: Sequence[Sequence[int]], index: int,
                 leading: int) -> dict:
    """``Concatenate``: the ``index``-th input placed in a slice of the output."""
    shape = input_shapes[index]
    axis = int(layer.axis)
    axis = axis + len(shape) if axis < 0 else axis - leading  # an axis of the neurons
    if not 0 <= axis < len(shape):
        raise NotImplementedError(f"layer {layer.name!r}: concatenation along the batch or "
                                  "time axis is not counted")
    offset = sum(int(s[axis]) for s in input_shapes[:index])
    return {"type": "concat", "input_shape": _ints(shape), "axis": axis, "offset": offset,
            "size": sum(int(s[axis]) for s in input_shapes)}
