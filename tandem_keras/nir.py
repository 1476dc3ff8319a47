"""Export a trained tandem SNN to NIR, the Neuromorphic Intermediate Representation.

``export_nir(model, path)`` writes the SNN that the tandem layers run in inference (BN
folded with the moving statistics, method §3) as a ``nir.NIRGraph`` (PyPI ``nir`` 1.0.x, the
``nir`` extra), which snnTorch, Norse, SpikingJelly, Sinabs, Rockpool, Lava and several
chips read. ``encode_for_nir(model, images)`` produces the graph's input.

The mapping, node by node (NIR is channels-first, time is the simulator's loop):

- ``TandemConv2D`` -> ``Conv2d`` (weight ``W'`` from ``layer.folded_weights()``, HWIO ->
  OIHW; bias ``b'/T``, the per-step bias) -> ``IF``. TensorFlow's ``'same'`` padding is
  asymmetric when the total padding is odd (stride 2, 3x3, even size: 0 top/left, 1
  bottom/right); NIR's integer padding is symmetric, so the kernel is zero-embedded by one
  leading row/column and padded by the larger side: the same products, exactly.
- ``TimeFlatten`` -> ``Flatten(start_dim=0)`` over ``(C, H, W)``; the ``TandemDense`` after
  it -> ``Affine`` whose weight columns are reordered from Keras's ``(h, w, c)`` to ``(c, h, w)``.
- ``TandemDense`` -> ``Affine`` (``W'^T``, ``b'/T``) -> ``IF``.
- Readout, ``decode="membrane"``: ``SpikeCount`` + ``Dense`` -> ``Affine`` (``W^T``, ``b/T``)
  as the graph's output; ``decode="spike_count"``: the output neurons' ``IF``.
  Either way **logits = the graph's output summed over the T steps** (the aggregate
  membrane potential ``W c + b``, or the spike count). ``Dropout`` is the identity.
- The analog encoder (everything up to and including ``SpikeEncoder``: normalization,
  first convolution, BN, ``floor``) is not a spiking network: it is the boundary. The
  graph's ``Input`` is the encoder's spike train ``[T, batch, C, H, W]``, which
  :func:`encode_for_nir` computes from images with the Keras model.

Neurons: ``IF(r=1, v_threshold=theta, v_reset=0)`` with node metadata
``reset="subtract"``. NIR 1.0 defines ``IF`` with reset *to* ``v_reset``; it has no
subtractive-reset field, and an ``I`` + ``Threshold`` + recurrent-edge subgraph (exact in
NIR's own semantics) is executed by none of the importers below. Importers and the reset:

- snnTorch 1.0.0 (``snntorch.import_nir.import_from_nir``, needs ``nirtorch``): maps ``IF``
  to ``Leaky(beta=0.9, threshold=v_threshold, reset_delay=False, init_hidden=False)``: reset
  by subtraction, but it leaks, returns ``(spk, mem)`` tuples inside the graph, and with
  ``reset_delay=False`` a neuron whose residue after a reset is still >= theta fires again
  only at 2 theta. A user replaces every ``Leaky`` by ``Leaky(beta=1.0,
  threshold=<same>, init_hidden=True)`` (default ``reset_delay=True``: ``V(t) = V(t-1) +
  z(t) - theta s(t-1)``, the IF neuron of method §3) and every ``Flatten(0, -1)`` by
  ``Flatten(1, -1)`` (snnTorch passes NIR's ``start_dim``, which does not count the batch
  axis, to torch as is). With these corrections the spikes are those of the Keras model
  (``tests/tandem_keras/test_nir_snntorch.py``; README, "Deploy").
- An importer that follows NIR's ``IF`` literally resets to ``v_reset = 0``: that is not
  this network (the residue above threshold is lost); use the simulator's subtractive IF
  neuron instead. Other importers are not checked here.

Thresholds: tandem_keras fires on ``V >= theta``, NIR's ``IF`` (and snnTorch) on ``v > v_threshold``;
they differ only when a potential lands exactly on ``theta`` (method §3: the layers'
rule is the reference). The graph metadata records ``time_steps``, ``decoding``,
``encoding``, ``reset``, ``threshold_rule``, ``readout`` and ``tandem_keras_version``.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import keras
import numpy as np

from tandem_keras.layers import SpikeCount, SpikeEncoder, TandemConv2D, TandemDense, TimeFlatten

_SPIKING_MODES = ("tandem", "bptt")  # the same forward pass: the IF SNN
_PASS_THROUGH = (keras.layers.Dropout, keras.layers.InputLayer)


def _nir():
    try:
        import nir  # noqa: PLC0415  (optional dependency)
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("export_nir needs the 'nir' package: pip install 'tandem_keras[nir]'") from error
    return nir


def _chain(model: keras.Model) -> list:
    """The model's layers from input to output; refuses branches and nested models."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"export_nir: model '{model.name}' must have one input and one output.")
    layers, tensor = [], model.outputs[0]
    while True:
        layer = tensor._keras_history.operation
        if isinstance(layer, keras.layers.InputLayer):
            break
        if isinstance(layer, keras.Model):
            raise ValueError(f"export_nir: cannot export layer '{layer.name}' (a nested "
                             f"{type(layer).__name__}); build the model from its layers.")
        inputs = keras.tree.flatten(layer._inbound_nodes[tensor._keras_history.node_index].input_tensors)
        if len(inputs) != 1:
            raise ValueError(f"export_nir: cannot export layer '{layer.name}' "
                             f"({type(layer).__name__}): it has {len(inputs)} inputs; only chains export.")
        layers.append(layer)
        tensor = inputs[0]
    return layers[::-1]


def _split_at_encoder(model: keras.Model) -> tuple[SpikeEncoder, list]:
    layers = _chain(model)
    encoders = [i for i, layer in enumerate(layers) if isinstance(layer, SpikeEncoder)]
    if len(encoders) != 1:
        raise ValueError(f"export_nir: model '{model.name}' must have exactly one SpikeEncoder "
                         f"(the boundary of the exported SNN), found {len(encoders)}.")
    encoder = layers[encoders[0]]
    if encoder.mode == "ann":
        raise ValueError(f"export_nir: layer '{encoder.name}' is in mode 'ann'; export the SNN: "
                         "tk.with_mode(model, 'tandem').")
    return encoder, layers[encoders[0] + 1:]


def _unsupported(layer, why: str) -> ValueError:
    return ValueError(f"export_nir: cannot export layer '{layer.name}' ({type(layer).__name__}): {why}")


def _same_padding(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) along one axis."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _conv_weight(layer: TandemConv2D, kernel: np.ndarray, spatial: tuple[int, int]):
    """OIHW weight, symmetric integer padding and dilation reproducing ``layer``'s conv."""
    weight = np.transpose(kernel, (3, 2, 0, 1))  # HWIO -> OIHW
    dilation = tuple(layer.dilation_rate)
    if layer.padding == "valid":
        return np.ascontiguousarray(weight), (0, 0), dilation
    pads = [_same_padding(n, k, s, d) for n, k, s, d in
            zip(spatial, layer.kernel_size, layer.strides, dilation)]
    if all(before == after for before, after in pads):
        return np.ascontiguousarray(weight), tuple(p[0] for p in pads), dilation
    if max(dilation) > 1:  # materialize the dilation so that one leading zero row is one pixel
        o, i, kh, kw = weight.shape
        dense = np.zeros((o, i, (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1), weight.dtype)
        dense[:, :, ::dilation[0], ::dilation[1]] = weight
        weight, dilation = dense, (1, 1)
    # One more padding row before than TF's and a leading zero row in the kernel: same taps.
    lead = [after - before for before, after in pads]
    weight = np.pad(weight, ((0, 0), (0, 0), (lead[0], 0), (lead[1], 0)))
    return np.ascontiguousarray(weight), tuple(p[1] for p in pads), dilation


def _if_node(nir, shape: tuple, threshold: float):
    return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, threshold, np.float32),
                  v_reset=np.zeros(shape, np.float32), metadata={"reset": "subtract"})


def export_nir(model: keras.Model, path: Optional[str | os.PathLike] = None) -> Any:
    """Exports the tandem SNN of ``model`` as a ``nir.NIRGraph`` (and writes it to ``path``).

    Each tandem layer becomes a synapse node with its BN-folded weights (moving statistics)
    and per-step bias ``b'/T`` followed by an ``IF`` node: in NIR's discrete-time reading,
    ``z(t) = W' s_in(t) + b'/T``, ``V(t) = V(t-1) + z(t) - theta s(t-1)``,
    ``s(t) = [V(t) >= theta]`` (method §3). The graph starts after the ``SpikeEncoder`` (its
    input is :func:`encode_for_nir`'s spike train) and ``logits = sum_t output(t)``.
    See the module docstring for the exact mapping and what importers do with the reset.

    Args:
      model: a Sequential or functional chain ``... -> SpikeEncoder -> TandemConv2D* ->
        TimeFlatten -> TandemDense* -> readout`` in mode ``"tandem"`` (or ``"bptt"``), e.g.
        any builder of ``models/``.
      path: if given, the graph is also written there (HDF5, ``nir.write``).

    Returns:
      The ``nir.NIRGraph``.

    Raises:
      ValueError: naming the first layer that cannot be exported.

    Example:
      >>> import tandem_keras as tk
      >>> from models import digits
      >>> graph = tk.export_nir(digits(time_steps=4), "/tmp/digits.nir")
      >>> list(graph.nodes)[:3], graph.metadata["time_steps"]
      (['input', 'tandem_conv1', 'tandem_conv1_if'], 4)
    """
    nir = _nir()
    encoder, layers = _split_at_encoder(model)
    time_steps = int(encoder.time_steps)
    shape = tuple(int(d) for d in encoder.output.shape[2:])  # channels-last, without T
    nodes: dict[str, Any] = {}
    chain: list[str] = []
    channels_first = (shape[-1],) + shape[:-1]
    nodes["input"] = nir.Input(input_type={"input": np.array(channels_first)})
    chain.append("input")
    flattened_from: Optional[tuple] = None  # (H, W, C) of the last Flatten, for the reorder
    counted = False  # after a SpikeCount: only the readout Dense may follow
    decoding = "spike_train"
    for layer in layers:
        if isinstance(layer, _PASS_THROUGH):
            continue
        if getattr(layer, "mode", "tandem") not in _SPIKING_MODES:
            raise _unsupported(layer, f"it is in mode {layer.mode!r}; export the SNN: "
                                      "tk.with_mode(model, 'tandem').")
        if isinstance(layer, (TandemConv2D, TandemDense)) and type(layer) not in (TandemConv2D, TandemDense):
            raise _unsupported(layer, "a subclass of a tandem layer computes more than its IF neurons; "
                                      "only TandemConv2D and TandemDense themselves export.")
        if counted and not (isinstance(layer, keras.layers.Dense) and decoding == "spike_count"):
            raise _unsupported(layer, "only one Dense readout may follow the SpikeCount.")
        if isinstance(layer, TandemConv2D):
            if len(shape) != 3:
                raise _unsupported(layer, f"its input has shape {shape}, not (H, W, C).")
            kernel, bias = (np.asarray(w, np.float32) for w in layer.folded_weights())
            weight, padding, dilation = _conv_weight(layer, kernel, shape[:2])
            nodes[layer.name] = nir.Conv2d(
                input_shape=shape[:2], weight=weight, stride=tuple(layer.strides), padding=padding,
                dilation=dilation, groups=1, bias=bias / np.float32(time_steps))
            shape = tuple(int(d) for d in layer.output.shape[2:])
            nodes[layer.name + "_if"] = _if_node(nir, (shape[-1],) + shape[:-1], layer.threshold)
            chain += [layer.name, layer.name + "_if"]
        elif isinstance(layer, (TimeFlatten, keras.layers.TimeDistributed)):
            if isinstance(layer, keras.layers.TimeDistributed) and not isinstance(
                    layer.layer, keras.layers.Flatten):
                raise _unsupported(layer, "only TimeDistributed(Flatten) is supported.")
            nodes[layer.name] = nir.Flatten(
                input_type={"input": np.array((shape[-1],) + shape[:-1])}, start_dim=0, end_dim=-1)
            flattened_from, shape = (shape if len(shape) > 1 else None), (int(np.prod(shape)),)
            chain.append(layer.name)
        elif isinstance(layer, (TandemDense, keras.layers.Dense)):
            if len(shape) != 1:
                raise _unsupported(layer, f"its input has shape {shape}; flatten it first (TimeFlatten).")
            if isinstance(layer, TandemDense):
                kernel, bias = (np.asarray(w, np.float32) for w in layer.folded_weights())
            else:
                if layer.activation not in (None, keras.activations.linear):
                    raise _unsupported(layer, "the readout Dense must have no activation (logits).")
                kernel = np.asarray(layer.kernel, np.float32)
                bias = (np.asarray(layer.bias, np.float32) if layer.use_bias
                        else np.zeros(kernel.shape[-1], np.float32))
                decoding = "membrane"
            if flattened_from is not None:  # rows in Keras's (h, w, c) order -> (c, h, w)
                h, w, c = flattened_from
                kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
            nodes[layer.name] = nir.Affine(weight=np.ascontiguousarray(kernel.T),
                                           bias=bias / np.float32(time_steps))
            chain.append(layer.name)
            shape, flattened_from = (kernel.shape[-1],), None
            if isinstance(layer, TandemDense):
                nodes[layer.name + "_if"] = _if_node(nir, shape, layer.threshold)
                chain.append(layer.name + "_if")
        elif isinstance(layer, SpikeCount):
            counted, decoding = True, "spike_count"
        else:
            raise _unsupported(layer, "NIR export supports TandemConv2D, TandemDense, TimeFlatten, "
                                      "Dropout, SpikeCount and a readout Dense after the SpikeEncoder.")
    nodes["output"] = nir.Output(output_type={"output": np.array((shape[-1],) + shape[:-1])})
    chain.append("output")
    from tandem_keras import __version__  # noqa: PLC0415  (avoid an import cycle)

    metadata = {
        "tandem_keras_version": __version__, "time_steps": time_steps, "decoding": decoding,
        "encoding": encoder.encoding, "reset": "subtract", "threshold_rule": "v >= v_threshold",
        "input": f"spike train of the SpikeEncoder '{encoder.name}', [T, batch, C, H, W] "
                 "(tandem_keras.nir.encode_for_nir)",
        "readout": "logits = sum over the T steps of the output",
    }
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])), metadata=metadata)
    if path is not None:
        nir.write(os.fspath(path), graph)
    return graph


def encode_for_nir(model: keras.Model, images: Any, batch_size: int = 256) -> np.ndarray:
    """The exported graph's input: the ``SpikeEncoder``'s spike train, time-major, channels-first.

    Runs the model's analog front end (normalization, encoder convolution, BN,
    ``a0 = min(floor(max(v, 0)/theta), T)``, front-loaded spikes; method §2) in inference mode.

    Args:
      model: the Keras model given to :func:`export_nir`.
      images: what ``model`` takes, ``[batch, H, W, C]``.
      batch_size: batch size of the Keras prediction.

    Returns:
      float32 ``[T, batch, C, H, W]`` (or ``[T, batch, F]``) holding 0/1: feed step ``t``
      to the simulator as ``x[t]``.

    Example:
      >>> from models import digits
      >>> encode_for_nir(digits(time_steps=4), np.zeros((2, 8, 8, 1))).shape
      (4, 2, 32, 8, 8)
    """
    encoder, _ = _split_at_encoder(model)
    front = keras.Model(model.inputs, encoder.output)
    spikes = np.asarray(front.predict(images, batch_size=batch_size, verbose=0), np.float32)
    axes = (1, 0) + ((spikes.ndim - 1,) + tuple(range(2, spikes.ndim - 1)) if spikes.ndim > 3 else (2,))
    return np.ascontiguousarray(np.transpose(spikes, axes))
