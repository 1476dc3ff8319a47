"""Export a trained tandem SNN to NIR, the Neuromorphic Intermediate Representation.

``export_nir(model, path)`` writes the SNN that the tandem layers run in inference (BN
folded with the moving statistics, method §3) as a ``nir.NIRGraph`` (PyPI ``nir`` 1.0.x, the
``nir`` extra), which snnTorch, Norse, SpikingJelly, Sinabs, Rockpool, Lava and several
chips read. ``encode_for_nir(model, images)`` produces the graph's input. The model's graph
is walked (branches, merges and pooling, not only chains); a node's input in NIR is the sum
of its incoming edges.

The mapping, layer by layer (NIR is channels-first, time is the simulator's loop):

- ``TandemConv2D`` -> ``Conv2d`` (weight ``W'`` from ``layer.folded_weights()``, HWIO ->
  OIHW; bias ``b'/T``, the per-step bias) -> the neuron node ``<name>_if``; with
  ``neuron=None`` (synapses only) the ``Conv2d`` alone, its current an input of the next
  neuron. TensorFlow's asymmetric ``'same'`` padding (stride 2, even size: 0 top/left, 1
  bottom/right) is reproduced exactly by a zero-embedded kernel and symmetric padding.
- ``TandemDense`` -> ``Affine`` (``W'^T``, ``b'/T``) -> neuron; after a flatten its weight
  columns are reordered from Keras's ``(h, w, c)`` to ``(c, h, w)``.
- ``TandemAdd`` (the residual neuron) -> one neuron node ``<name>_if`` with an edge from each
  input (the branch's current, the shortcut's spikes or projection current; a
  ``Scale`` node ``<name>_scale<i>`` for a weight ``w_i != 1``): two edges into one node.
- Average pooling (``tk.AveragePooling2D``, or Keras's on the counts): ``AvgPool2d``
  (``'valid'``), or ``SumPool2d`` + ``Scale`` by the number of the window's elements inside
  the image (``'same'``, TensorFlow's border average; an asymmetric ``'same'`` padding is
  refused). Global average pooling: ``AvgPool2d`` over the map, then ``Flatten``.
- ``TimeFlatten`` / ``TimeDistributed(Flatten)`` -> ``Flatten(start_dim=0)`` over ``(C, H, W)``.
- Readout, ``decode="membrane"``: ``SpikeCount`` then linear Keras layers (pooling,
  ``Flatten``, ``Add``) and a ``Dense`` -> the same per step, the ``Dense`` as ``Affine``
  (``W^T``, ``b/T``) and the graph's output; ``decode="spike_count"``: the output neurons.
  Either way **logits = the graph's output summed over the T steps**. ``Dropout`` is the
  identity.
- Max pooling has no NIR node and ``Concatenate`` no NIR equivalent: refused, naming them.
- The analog encoder (everything up to and including ``SpikeEncoder``) is the boundary: the
  graph's ``Input`` is the encoder's spike train ``[T, batch, C, H, W]``
  (:func:`encode_for_nir`).

Neurons (:func:`tandem_keras._nir_nodes.neuron`): IF -> ``IF(r=1, v_threshold=theta,
v_reset=0)``; LIF with leak ``beta`` -> ``LIF(tau=1/(1-beta), r=tau, v_leak=0,
v_threshold=theta)``, the time constant in time steps (``metadata["tau_unit"]``, graph
``dt = 1``): forward Euler of ``tau dv/dt = v_leak - v + r I`` with one step per time step is
``v(t) = beta v(t-1) + I(t)``, the layer's LIF. Node metadata ``reset="subtract"``: NIR 1.0
resets *to* ``v_reset`` and has no subtractive-reset field (an ``I`` + ``Threshold`` +
recurrent-edge subgraph, exact in NIR's own semantics, is executed by none of the importers
below). NIR 1.0's neurons have no initial state either: a neuron with ``initial_potential``
``v0`` carries ``metadata["v_initial"] = v0 * theta``, where a simulator must start ``v``.

- snnTorch 1.0.0 (``snntorch.import_nir.import_from_nir``, needs ``nirtorch``): maps ``IF``
  to ``Leaky(beta=0.9, threshold=v_threshold, reset_delay=False, init_hidden=False)``: reset
  by subtraction, but it leaks, returns ``(spk, mem)`` tuples inside the graph, and with
  ``reset_delay=False`` a neuron whose residue after a reset is still >= theta fires again
  only at 2 theta. A user replaces every ``Leaky`` by ``Leaky(beta=1.0,
  threshold=<same>, init_hidden=True)`` (default ``reset_delay=True``: ``V(t) = V(t-1) +
  z(t) - theta s(t-1)``, the IF neuron of method §3) and every ``Flatten(0, -1)`` by
  ``Flatten(1, -1)`` (snnTorch passes NIR's ``start_dim``, which does not count the batch
  axis, to torch as is). With these corrections the spikes of a chain are those of the Keras
  model (``tests/tandem_keras/test_nir_snntorch.py``; README, "Deploy").
- An importer that follows NIR's ``IF`` literally resets to ``v_reset = 0``: that is not
  this network (the residue above threshold is lost); use the simulator's subtractive IF
  neuron instead. Other importers are not checked here.

Thresholds: tandem_keras fires on ``V >= theta``, NIR's ``IF`` (and snnTorch) on ``v > v_threshold``;
they differ only when a potential lands exactly on ``theta`` (method §3: the layers'
rule is the reference). The graph metadata records ``time_steps``, ``decoding``,
``encoding``, ``reset``, ``threshold_rule``, ``dt``, ``readout`` and ``tandem_keras_version``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import keras
import numpy as np

from tandem_keras import _nir_nodes
from tandem_keras._keras_internals import call_nodes
from tandem_keras.layers import SpikeCount, SpikeEncoder, TandemConv2D, TandemDense, TimeFlatten
from tandem_keras.layers import tandem_layers

_SPIKING_MODES = ("tandem", "bptt")  # the same forward pass: the SNN
_PASS_THROUGH = (keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.GaussianDropout,
                 keras.layers.AlphaDropout, keras.layers.GaussianNoise, keras.layers.Identity)


def _nir():
    try:
        import nir  # noqa: PLC0415  (optional dependency)
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("export_nir needs the 'nir' package: pip install 'tandem_keras[nir]'") from error
    return nir


def _tk_class(name: str) -> tuple:
    """The tandem_keras layer class ``name`` as a 1-tuple (empty if this version lacks it)."""
    from tandem_keras import layers

    cls = getattr(layers, name, None)
    return (cls,) if isinstance(cls, type) else ()


def _split_at_encoder(model: keras.Model) -> tuple[Any, list]:
    """The ``SpikeEncoder``'s call node and the model's call nodes in topological order."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"export_nir: model '{model.name}' must have one input and one output.")
    try:
        nodes, _ = call_nodes(model)
    except NotImplementedError as error:  # a nested model
        raise ValueError(f"export_nir: cannot export {error}") from None
    encoders = [n for n in nodes if isinstance(n.operation, SpikeEncoder)]
    if len(encoders) != 1:
        raise ValueError(f"export_nir: model '{model.name}' must have exactly one SpikeEncoder "
                         f"(the boundary of the exported SNN), found {len(encoders)}.")
    if encoders[0].operation.mode == "ann":
        raise ValueError(f"export_nir: layer '{encoders[0].operation.name}' is in mode 'ann'; export "
                         "the SNN: tk.with_mode(model, 'tandem').")
    return encoders[0], nodes


def _unsupported(layer, why: str) -> ValueError:
    return ValueError(f"export_nir: cannot export layer '{layer.name}' ({type(layer).__name__}): {why}")


def _chw(shape: tuple) -> np.ndarray:
    return np.array((shape[-1],) + tuple(shape[:-1]))


@dataclasses.dataclass(frozen=True)
class _Port:
    """A Keras tensor in the NIR graph: the sum of the outputs of ``sources``.

    ``shape``: channels-last, without batch and time; ``flat_from``: the ``(H, W, C)`` a
    flatten came from (for the next dense layer's column order); ``spiking``: the sources are
    neurons; ``counted``: after ``SpikeCount`` (only the linear readout may follow).
    """

    sources: tuple
    shape: tuple
    flat_from: Optional[tuple] = None
    spiking: bool = False
    counted: bool = False


class _Builder:
    def __init__(self, nir: Any, time_steps: int) -> None:
        self.nir, self.time_steps = nir, time_steps
        self.nodes: dict[str, Any] = {}
        self.edges: list = []

    def add(self, name: str, node: Any, *ports: _Port) -> str:
        self.nodes[name] = node
        self.edges += [(s, name) for port in ports for s in port.sources]
        return name

    def synapses(self, layer: Any, port: _Port, out_shape: tuple) -> _Port:
        """A tandem layer: its synapse node and, unless ``neuron=None``, its neuron node."""
        nir = self.nir
        kernel, bias = (np.asarray(w, np.float32) for w in layer.folded_weights())
        bias = bias / np.float32(self.time_steps)
        if isinstance(layer, TandemConv2D):
            if len(port.shape) != 3 or port.flat_from is not None:
                raise _unsupported(layer, f"its input has shape {port.shape}, not (H, W, C).")
            weight, padding, dilation = _nir_nodes.conv_weight(layer, kernel, port.shape[:2])
            node = nir.Conv2d(input_shape=port.shape[:2], weight=weight, stride=tuple(layer.strides),
                              padding=padding, dilation=dilation, groups=1, bias=bias)
        else:
            node = nir.Affine(weight=self.dense_weight(layer, kernel, port), bias=bias)
        self.add(layer.name, node, port)
        synapse = _Port((layer.name,), out_shape)
        if getattr(layer, "neuron", "if") is None:
            return synapse
        return self.neurons(layer, out_shape, synapse)

    def neurons(self, layer: Any, shape: tuple, *ports: _Port) -> _Port:
        name = self.add(layer.name + "_if", _nir_nodes.neuron(self.nir, layer, tuple(_chw(shape))), *ports)
        return _Port((name,), shape, spiking=True)

    @staticmethod
    def dense_weight(layer: Any, kernel: np.ndarray, port: _Port) -> np.ndarray:
        if len(port.shape) != 1:
            raise _unsupported(layer, f"its input has shape {port.shape}; flatten it first (TimeFlatten).")
        if port.flat_from is not None:  # rows in Keras's (h, w, c) order -> (c, h, w)
            h, w, c = port.flat_from
            kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
        return np.ascontiguousarray(kernel.T)

    def flatten(self, name: str, port: _Port) -> _Port:
        self.add(name, self.nir.Flatten(input_type={"input": _chw(port.shape)}, start_dim=0, end_dim=-1), port)
        flat = (int(np.prod(port.shape)),)
        return _Port((name,), flat, port.shape if len(port.shape) > 1 else None, counted=port.counted)


def _layer_port(b: _Builder, layer: Any, ports: list, out_shape: tuple) -> _Port:
    """The NIR nodes of one Keras layer call; the port of its output."""
    L = keras.layers
    inner = layer.layer if isinstance(layer, L.TimeDistributed) else layer
    port = ports[0]
    if isinstance(layer, _PASS_THROUGH):
        return port
    if getattr(layer, "mode", "tandem") not in _SPIKING_MODES:
        raise _unsupported(layer, f"it is in mode {layer.mode!r}; export the SNN: tk.with_mode(model, 'tandem').")
    if isinstance(inner, L.MaxPooling2D) or isinstance(layer, _tk_class("MaxPooling2D")):
        raise _unsupported(layer, "NIR 1.0 has no max-pooling node; use average pooling "
                                  "(tk.AveragePooling2D), which exports as AvgPool2d / SumPool2d.")
    if isinstance(layer, L.Concatenate):
        raise _unsupported(layer, "NIR 1.0 has no concatenation node.")
    if isinstance(layer, tandem_layers.TandemLayer):
        if type(layer) not in (TandemConv2D, TandemDense):
            raise _unsupported(layer, "a subclass of a tandem layer computes more than its neurons; "
                                      "only TandemConv2D and TandemDense themselves export.")
        return b.synapses(layer, port, out_shape)
    if isinstance(layer, _tk_class("TandemAdd")):
        scales = layer.scales or [1.0] * len(ports)
        inputs = []
        for i, (p, w) in enumerate(zip(ports, scales)):
            if w != 1.0:
                scale = np.full(tuple(_chw(p.shape)), w, np.float32)
                p = _Port((b.add(f"{layer.name}_scale{i}", b.nir.Scale(scale=scale), p),), p.shape)
            inputs.append(p)
        return b.neurons(layer, out_shape, *inputs)
    if isinstance(layer, L.Add) and len({(p.shape, p.flat_from, p.counted) for p in ports}) == 1:
        return _Port(sum((p.sources for p in ports), ()), port.shape, port.flat_from, counted=port.counted)
    if isinstance(layer, SpikeCount):
        return dataclasses.replace(port, counted=True)
    if isinstance(layer, TimeFlatten) or isinstance(inner, L.Flatten) and (
            layer is not inner or port.counted):
        return b.flatten(layer.name, port)
    pooling = isinstance(inner, L.AveragePooling2D) or isinstance(layer, _tk_class("AveragePooling2D"))
    global_pooling = (isinstance(inner, L.GlobalAveragePooling2D)
                      or isinstance(layer, _tk_class("GlobalAveragePooling2D")))
    if (pooling or global_pooling) and len(port.shape) == 3 and port.flat_from is None:
        if global_pooling:
            b.add(layer.name, _nir_nodes.global_pooling(b.nir, port.shape[:2]), port)
            pooled = _Port((layer.name,), (1, 1, port.shape[-1]), counted=port.counted)
            return pooled if getattr(inner, "keepdims", False) else b.flatten(layer.name + "_flatten", pooled)
        nodes, why = _nir_nodes.pooling(b.nir, inner, port.shape[:2], port.shape[-1])
        if why:
            raise _unsupported(layer, why + ".")
        previous = port
        for suffix, node in nodes:
            previous = _Port((b.add(layer.name + suffix, node, previous),), out_shape, counted=port.counted)
        return previous
    if isinstance(inner, L.Dense):
        if inner.activation not in (None, keras.activations.linear):
            raise _unsupported(layer, "the readout Dense must have no activation (logits).")
        kernel = np.asarray(inner.kernel, np.float32)
        bias = np.asarray(inner.bias, np.float32) if inner.use_bias else np.zeros(kernel.shape[-1], np.float32)
        b.add(layer.name, b.nir.Affine(weight=b.dense_weight(layer, kernel, port),
                                       bias=bias / np.float32(b.time_steps)), port)
        return _Port((layer.name,), out_shape, counted=port.counted)
    raise _unsupported(layer, "NIR export supports TandemConv2D, TandemDense, TandemAdd, average "
                              "pooling, TimeFlatten, Dropout, SpikeCount and a linear readout after "
                              "the SpikeEncoder.")


def export_nir(model: keras.Model, path: Optional[str | os.PathLike] = None) -> Any:
    """Exports the tandem SNN of ``model`` as a ``nir.NIRGraph`` (and writes it to ``path``).

    Each tandem layer becomes a synapse node with its BN-folded weights (moving statistics)
    and per-step bias ``b'/T`` followed by a neuron node: in NIR's discrete-time reading,
    ``z(t) = W' s_in(t) + b'/T``, ``V(t) = V(t-1) + z(t) - theta s(t-1)`` (IF),
    ``s(t) = [V(t) >= theta]`` (method §3); a neuron node with several incoming edges (the
    residual neuron) integrates their sum. The graph starts after the ``SpikeEncoder`` (its
    input is :func:`encode_for_nir`'s spike train) and ``logits = sum_t output(t)``.
    See the module docstring for the exact mapping and what importers do with the reset.

    Args:
      model: a Sequential or functional model ``... -> SpikeEncoder -> tandem layers,
        TandemAdd, average pooling, TimeFlatten -> readout`` in mode ``"tandem"`` (or
        ``"bptt"``), e.g. any builder of ``models/``.
      path: if given, the graph is also written there (HDF5, ``nir.write``).

    Returns:
      The ``nir.NIRGraph``.

    Raises:
      ValueError: naming the first layer that cannot be exported (one line).

    Example:
      >>> import tandem_keras as tk
      >>> from models import digits
      >>> graph = tk.export_nir(digits(time_steps=4), "/tmp/digits.nir")
      >>> list(graph.nodes)[:3], graph.metadata["time_steps"]
      (['input', 'tandem_conv1', 'tandem_conv1_if'], 4)
    """
    nir = _nir()
    encoder_node, nodes = _split_at_encoder(model)
    encoder = encoder_node.operation
    time_steps = int(encoder.time_steps)
    b = _Builder(nir, time_steps)
    start = encoder_node.outputs[0]
    shape = tuple(int(d) for d in start.shape[2:])  # channels-last, without T
    b.add("input", nir.Input(input_type={"input": _chw(shape)}))
    ports = {id(start): _Port(("input",), shape, spiking=True)}
    for node in nodes[nodes.index(encoder_node) + 1:]:
        inputs = [ports.get(id(t)) for t in node.input_tensors]
        if all(p is None for p in inputs):
            continue  # the analog front end
        layer = node.operation
        if any(p is None for p in inputs):
            raise _unsupported(layer, "it mixes the analog front end with the spike trains.")
        out_shape = tuple(int(d) for d in node.outputs[0].shape[1:])
        if not isinstance(layer, SpikeCount) and not inputs[0].counted:
            out_shape = out_shape[1:]  # the time axis
        ports[id(node.outputs[0])] = _layer_port(b, layer, inputs, out_shape)
    output = ports.get(id(model.outputs[0]))
    if output is None:
        raise ValueError(f"export_nir: the output of model '{model.name}' does not depend on the "
                         f"SpikeEncoder '{encoder.name}'.")
    b.add("output", nir.Output(output_type={"output": _chw(output.shape)}), output)
    decoding = ("spike_count" if output.counted else "spike_train") if output.spiking else "membrane"
    from tandem_keras import __version__  # noqa: PLC0415  (avoid an import cycle)

    metadata = {
        "tandem_keras_version": __version__, "time_steps": time_steps, "decoding": decoding,
        "encoding": encoder.encoding, "reset": "subtract", "threshold_rule": "v >= v_threshold",
        "dt": 1.0, "input": f"spike train of the SpikeEncoder '{encoder.name}', [T, batch, C, H, W] "
                            "(tandem_keras.nir.encode_for_nir)",
        "readout": "logits = sum over the T steps of the output",
    }
    graph = nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=metadata)
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
    encoder_node, _ = _split_at_encoder(model)
    front = keras.Model(model.inputs, encoder_node.outputs[0])
    spikes = np.asarray(front.predict(images, batch_size=batch_size, verbose=0), np.float32)
    axes = (1, 0) + ((spikes.ndim - 1,) + tuple(range(2, spikes.ndim - 1)) if spikes.ndim > 3 else (2,))
    return np.ascontiguousarray(np.transpose(spikes, axes))
