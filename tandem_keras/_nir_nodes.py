"""NIR nodes of tandem_keras's layers (used by :mod:`tandem_keras.nir`; NIR is channels-first).

Each function returns NIR nodes for one Keras layer, with the exact arithmetic of the layer
in inference (BN folded with the moving statistics, per-step bias ``b'/T``).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np


def same_padding(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) along one axis."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def conv_weight(layer: Any, kernel: np.ndarray, spatial: tuple[int, int]):
    """OIHW weight, symmetric integer padding and dilation reproducing ``layer``'s conv.

    TensorFlow's 'same' padding is asymmetric when the total is odd (one more after); NIR's
    is symmetric, so the kernel gets one leading zero row/column and the larger padding on
    both sides: the same products, exactly.
    """
    weight = np.transpose(kernel, (3, 2, 0, 1))  # HWIO -> OIHW
    dilation = tuple(int(d) for d in layer.dilation_rate)
    if layer.padding == "valid":
        return np.ascontiguousarray(weight), (0, 0), dilation
    pads = [same_padding(n, k, s, d) for n, k, s, d in
            zip(spatial, layer.kernel_size, layer.strides, dilation)]
    if all(before == after for before, after in pads):
        return np.ascontiguousarray(weight), tuple(p[0] for p in pads), dilation
    if max(dilation) > 1:  # materialize the dilation so that one leading zero row is one pixel
        o, i, kh, kw = weight.shape
        dense = np.zeros((o, i, (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1), weight.dtype)
        dense[:, :, ::dilation[0], ::dilation[1]] = weight
        weight, dilation = dense, (1, 1)
    lead = [after - before for before, after in pads]
    weight = np.pad(weight, ((0, 0), (0, 0), (lead[0], 0), (lead[1], 0)))
    return np.ascontiguousarray(weight), tuple(p[1] for p in pads), dilation


def pooling(nir: Any, layer: Any, spatial: tuple[int, int], channels: int) -> tuple[list, Optional[str]]:
    """``[(suffix, node), ...]`` of an average pooling over ``spatial``, or ``([], why)``.

    ``"valid"``: ``AvgPool2d``. ``"same"`` with symmetric padding: ``SumPool2d`` then a
    ``Scale`` by 1 / (the number of the window's elements inside the image), TensorFlow's
    border average. An asymmetric ``"same"`` padding has no NIR equivalent.
    """
    kernel = np.array(layer.pool_size, dtype=np.int64)
    stride = np.array(layer.strides or layer.pool_size, dtype=np.int64)
    if layer.padding == "valid":
        return [("", nir.AvgPool2d(kernel_size=kernel, stride=stride, padding=np.zeros(2, np.int64)))], None
    pads = [same_padding(n, k, s) for n, k, s in zip(spatial, kernel, stride)]
    if any(before != after for before, after in pads):
        return [], (f"TensorFlow pads its 'same' window {tuple(int(k) for k in kernel)} with stride "
                    f"{tuple(int(s) for s in stride)} on {tuple(spatial)} more after than before, "
                    "which NIR's symmetric padding cannot express; use padding='valid' or an input "
                    "size that TensorFlow pads evenly")
    counts = []
    for n, k, s, (p, _) in zip(spatial, kernel, stride, pads):
        starts = np.arange(-(-n // s)) * s - p
        counts.append(np.minimum(starts + k, n) - np.maximum(starts, 0))
    inside = np.outer(counts[0], counts[1]).astype(np.float32)
    scale = np.broadcast_to(1.0 / inside, (channels,) + inside.shape)
    return [("", nir.SumPool2d(kernel_size=kernel, stride=stride, padding=np.array([p[0] for p in pads]))),
            ("_scale", nir.Scale(scale=np.ascontiguousarray(scale, np.float32)))], None


def global_pooling(nir: Any, spatial: tuple[int, int]) -> Any:
    """Global average pooling: ``AvgPool2d`` over the whole map (output ``[C, 1, 1]``)."""
    kernel = np.array(spatial, dtype=np.int64)
    return nir.AvgPool2d(kernel_size=kernel, stride=kernel, padding=np.zeros(2, np.int64))


def neuron(nir: Any, layer: Any, shape: tuple) -> Any:
    """The ``IF`` or ``LIF`` node of ``layer``'s neurons (channels-first ``shape``).

    IF: ``IF(r=1, v_threshold=theta, v_reset=0)``. LIF with leak ``beta``: ``LIF(tau,
    r=tau, v_leak=0, v_threshold=theta)``, ``tau = 1/(1-beta)`` time steps: NIR's
    ``tau dv/dt = v_leak - v + r I`` under forward Euler with a step of one time step is
    ``v(t) = beta v(t-1) + I(t)``. Metadata: ``reset = "subtract"`` (NIR 1.0 resets *to*
    ``v_reset``, it has no subtractive reset), ``tau_unit = "time step"`` for LIF, and
    ``v_initial`` = ``initial_potential * theta`` when nonzero (NIR 1.0's neurons have no
    initial state: a simulator must start the potentials there).
    """
    theta = float(layer.threshold)
    cell = getattr(layer, "neuron", None)
    metadata: dict = {"reset": "subtract"}
    v0 = float(getattr(cell, "initial_potential", 0.0)) * theta
    if v0:
        metadata["v_initial"] = v0
    full = lambda value: np.full(shape, value, np.float32)  # noqa: E731
    beta = float(getattr(cell, "beta", 1.0))
    if beta < 1.0:
        tau = 1.0 / (1.0 - beta)
        metadata["tau_unit"] = "time step"
        return nir.LIF(tau=full(tau), r=full(tau), v_leak=full(0.0), v_threshold=full(theta),
                       v_reset=full(0.0), metadata=metadata)
    return nir.IF(r=full(1.0), v_threshold=full(theta), v_reset=full(0.0), metadata=metadata)
