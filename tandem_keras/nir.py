"""Export a trained tandem SNN to NIR, the Neuromorphic Intermediate Representation.

``export_nir(model, path)`` writes the SNN that the tandem layers run in inference (BN
folded with the moving statistics, method §3) as a ``nir.NIRGraph`` (PyPI ``nir`` 1.0.x, the
``nir`` extra), which snnTorch, Norse, SpikingJelly, Sinabs, Rockpool, Lava and several
chips read. ``encode_for_nir(model, images)`` produces the graph's input. The model's graph
is walked (branches, merges and pooling, not only chains); a node's input in NIR is the sum
of its incoming edges.

The mapping, layer by layer, as each layer's kind says (its ``nir`` and ``nir_linear``
fields in :mod:`tandem_keras.kinds`: a tandem layer takes the synapse node of its Keras class;
a user's layer registers its own). NIR is channels-first; time is the simulator's loop:

- A tandem layer -> its synapse node(s) with the BN-folded weights ``W'`` of
  ``layer.folded_weights()`` (moving statistics) and the per-step bias ``b'/T`` -> the
  neuron node ``<name>_if``; with ``neuron=None`` (synapses only) the synapse node alone, its
  current an input of the next neuron. The synapse nodes: ``TandemConv2D`` -> ``Conv2d``
  (HWIO -> OIHW); ``TandemConv1D`` -> ``Conv1d``; ``TandemDepthwiseConv2D`` -> ``Conv2d``
  with ``groups`` = its input channels; ``TandemSeparableConv2D`` -> two nodes, the depthwise
  ``Conv2d`` ``<name>_depthwise`` (groups, no bias) and the pointwise 1x1 ``Conv2d``
  ``<name>``; ``TandemDense`` -> ``Affine`` (``W'^T``), after a flatten its weight columns
  reordered from Keras's ``(h, w, c)`` to ``(c, h, w)``. TensorFlow's asymmetric padding
  (``'same'`` with stride 2 on an even size: 0 before, 1 after; ``'causal'``: all before) is
  reproduced exactly by a zero-embedded kernel and symmetric padding.
- ``Concatenate`` on the channel axis -> no node: each branch goes on as its own edges, and
  the next weighted layer has one synapse node per branch (``<name>_in<i>``) with the
  weights of that branch's input channels, every one an edge into the neuron node (a NIR
  node sums its inputs). Pooling and flatten act on each branch.
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
  identity. ``SpikeCountOutput``'s tie rule (its decoding) reads the final membrane
  potential, which NIR's neurons do not output: refused, naming the decoding.
- Max pooling has no NIR node (refused, naming it), nor has a concatenation that is the
  model's output or feeds ``TandemAdd``.
- The analog encoder (everything up to and including ``SpikeEncoder``) is the boundary: the
  graph's ``Input`` is the encoder's spike train ``[T, batch, C, H, W]`` (or
  ``[T, batch, C, L]``, :func:`encode_for_nir`).

NIR 1.0's type check counts a grouped ``Conv2d``'s input channels from its weight (one
group's): a graph with depthwise or separable layers is built without it and says so in its
metadata (``type_check``); read it with ``nir.read(path, type_check=False)``.

Neurons (``Neuron.nir_node`` of :mod:`tandem_keras.neurons`): IF -> ``IF(r=1, v_threshold=theta,
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
from typing import Any, Optional, Sequence

import keras
import numpy as np

from tandem_keras import kinds
from tandem_keras._keras_internals import call_nodes
from tandem_keras._nested import flat

_SPIKING_MODES = ("tandem", "bptt")  # the same forward pass: the SNN


def _nir():
    try:
        import nir  # noqa: PLC0415  (optional dependency)
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("export_nir needs the 'nir' package: pip install 'tandem_keras[nir]'") from error
    return nir


def _split_at_encoder(model: keras.Model) -> tuple[Any, list]:
    """The ``SpikeEncoder``'s call node and the model's call nodes in topological order."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"export_nir: model '{model.name}' must have one input and one output.")
    try:
        nodes, _ = call_nodes(model)
    except NotImplementedError as error:  # a nested model left (flatten it first: _nested.flat)
        raise ValueError(f"export_nir: cannot export {error}") from None
    encoders = [n for n in nodes if kinds.role(n.operation) == "encoder"]
    if len(encoders) != 1:
        raise ValueError(f"export_nir: model '{model.name}' must have exactly one SpikeEncoder "
                         f"(the boundary of the exported SNN), found {len(encoders)}.")
    if encoders[0].operation.mode == "ann":
        raise ValueError(f"export_nir: layer '{encoders[0].operation.name}' is in mode 'ann'; export "
                         "the SNN: tk.with_mode(model, 'tandem').")
    return encoders[0], nodes


def unsupported(layer, why: str) -> ValueError:
    """The one-line refusal of a layer (``raise unsupported(layer, why)``)."""
    return ValueError(f"export_nir: cannot export layer '{layer.name}' ({type(layer).__name__}): {why}")


def channels_first(shape: tuple) -> np.ndarray:
    """A channels-last shape ``(..., C)`` as NIR's ``(C, ...)``."""
    return np.array((shape[-1],) + tuple(shape[:-1]))


@dataclasses.dataclass(frozen=True)
class Part:
    """Channels ``offset .. offset + channels`` of a port: the sum of the outputs of the
    nodes ``sources``. ``spatial``: the positions a flatten came from (``()`` if none), so
    that a dense layer's rows, in Keras's ``(positions, channel)`` order, can be sliced."""

    sources: tuple
    offset: int
    channels: int
    spatial: tuple = ()


@dataclasses.dataclass(frozen=True)
class Port:
    """A Keras tensor in the NIR graph: the concatenation of its ``parts`` on the channel
    axis (one part unless a ``Concatenate`` made it; NIR has no concatenation node, a part
    goes on as its own edges). ``shape``: channels-last, without batch and time;
    ``spiking``: the sources are neurons; ``counted``: after ``SpikeCount``."""

    parts: tuple
    shape: tuple
    spiking: bool = False
    counted: bool = False

    @property
    def sources(self) -> tuple:
        if len(self.parts) != 1:
            raise ValueError("a concatenation")
        return self.parts[0].sources

    @property
    def flat(self) -> bool:
        return any(p.spatial for p in self.parts)


def port(sources: tuple, shape: tuple, spiking: bool = False, counted: bool = False) -> Port:
    """A port of one part: the sum of the outputs of ``sources``."""
    return Port((Part(tuple(sources), 0, int(shape[-1])),), tuple(shape), spiking, counted)


class Builder:
    """The NIR graph being built: nodes, edges and the helpers of the layers' mappings."""

    def __init__(self, nir: Any, time_steps: int) -> None:
        self.nir, self.time_steps = nir, time_steps
        self.nodes: dict[str, Any] = {}
        self.edges: list = []

    def add(self, name: str, node: Any, *sources: Sequence[str]) -> str:
        """Adds ``node`` with an edge from every node of every ``sources``; returns ``name``."""
        self.nodes[name] = node
        self.edges += [(s, name) for group in sources for s in group]
        return name

    @staticmethod
    def part_name(layer: Any, port_: Port, index: int) -> str:
        return layer.name if len(port_.parts) == 1 else f"{layer.name}_in{index}"

    def per_part(self, layer: Any, port_: Port, make) -> Port:
        """A per-channel map (pooling, flatten, ...) applied to every part: ``make(part,
        name, part_shape) -> (part, shape)``; the port of the results."""
        parts, shape = [], None
        for i, part in enumerate(port_.parts):
            part_shape = port_.shape[:-1] + (part.channels,)
            new, shape = make(part, self.part_name(layer, port_, i), part_shape)
            parts.append(dataclasses.replace(new, offset=part.offset))
        channels = sum(p.channels for p in parts)
        return Port(tuple(parts), tuple(shape[:-1]) + (channels,), port_.spiking, port_.counted)

    def linear(self, layer: Any, port_: Port, weights: list, bias: np.ndarray) -> tuple:
        """The synapse nodes of ``layer``'s linear map with ``weights`` (Keras's layout) and
        the per-step ``bias``: one chain per part of ``port_``, each with the weights of its
        input channels and the bias on the first; returns the nodes whose outputs sum to the
        map's output."""
        mapping = kinds.field(layer, "nir_linear")
        if mapping is None:
            raise unsupported(layer, "NIR export has no synapse node for its linear map.")
        ends = []
        for i, part in enumerate(port_.parts):
            b = bias if i == 0 else np.zeros_like(bias)
            ends.append(mapping(self, layer, weights, b, port_, part, self.part_name(layer, port_, i)))
        return tuple(ends)

    def neurons(self, layer: Any, shape: tuple, *sources: Sequence[str]) -> Port:
        """The node of ``layer``'s neurons (``<name>_if``) fed by ``sources``."""
        try:
            node = layer.neuron.nir_node(self.nir, float(layer.threshold), tuple(channels_first(shape)))
        except NotImplementedError as error:
            raise unsupported(layer, str(error)) from None
        return port((self.add(layer.name + "_if", node, *sources),), shape, spiking=True)

    def flatten(self, name: str, part: Part, shape: tuple) -> tuple:
        self.add(name, self.nir.Flatten(input_type={"input": channels_first(shape)}, start_dim=0, end_dim=-1),
                 part.sources)
        flat = (int(np.prod(shape)),)
        spatial = tuple(shape[:-1]) if len(shape) > 1 else part.spatial
        return Part((name,), part.offset, flat[0] if not spatial else part.channels, spatial), flat


def in_channels(weight: np.ndarray, port_: Port, part: Part, axis: int = -2) -> np.ndarray:
    """The slice of ``weight`` along its input-channel ``axis`` that reads ``part``."""
    index = [slice(None)] * weight.ndim
    index[axis] = slice(part.offset, part.offset + part.channels)
    return weight[tuple(index)]


def _layer_port(b: Builder, layer: Any, ports: list, out_shape: tuple) -> Port:
    """The NIR nodes of one Keras layer call; the port of its output."""
    if kinds.has_modes(layer) and layer.mode not in _SPIKING_MODES:
        raise unsupported(layer, f"it is in mode {layer.mode!r}; export the SNN: tk.with_mode(model, 'tandem').")
    mapping = kinds.field(layer, "nir")
    if mapping is None:
        raise unsupported(layer, "NIR export supports the tandem layers (Conv1D, Conv2D, "
                                 "DepthwiseConv2D, SeparableConv2D, Dense), TandemAdd, average "
                                 "pooling, Concatenate, TimeFlatten, Dropout, SpikeCount and a "
                                 "linear readout after the SpikeEncoder.")
    provider = kinds.provider(type(kinds.unwrap(layer)), "nir")
    if type(kinds.unwrap(layer)).call is not provider.call:
        raise unsupported(layer, f"it overrides call() of {provider.__name__}, whose NIR mapping "
                                 "it would inherit; register its own with tk.register_layer(cls, "
                                 "nir=...).")
    return mapping(b, layer, ports, out_shape)


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
    model = flat(model)
    encoder_node, nodes = _split_at_encoder(model)
    encoder = encoder_node.operation
    time_steps = int(encoder.time_steps)
    b = Builder(nir, time_steps)
    start = encoder_node.outputs[0]
    shape = tuple(int(d) for d in start.shape[2:])  # channels-last, without T
    b.add("input", nir.Input(input_type={"input": channels_first(shape)}))
    ports = {id(start): port(("input",), shape, spiking=True)}
    for node in nodes[nodes.index(encoder_node) + 1:]:
        inputs = [ports.get(id(t)) for t in node.input_tensors]
        if all(p is None for p in inputs):
            continue  # the analog front end
        layer = node.operation
        if any(p is None for p in inputs):
            raise unsupported(layer, "it mixes the analog front end with the spike trains.")
        out_shape = tuple(int(d) for d in node.outputs[0].shape[1:])
        if kinds.kind_of(layer).time != "drop" and not inputs[0].counted:
            out_shape = out_shape[1:]  # the time axis
        ports[id(node.outputs[0])] = _layer_port(b, layer, inputs, out_shape)
    output = ports.get(id(model.outputs[0]))
    if output is None:
        raise ValueError(f"export_nir: the output of model '{model.name}' does not depend on the "
                         f"SpikeEncoder '{encoder.name}'.")
    if len(output.parts) != 1:
        raise unsupported(nodes[-1].operation, "a concatenation is the model's output (NIR has no "
                                               "concatenation node).")
    b.add("output", nir.Output(output_type={"output": channels_first(output.shape)}), output.sources)
    decoding = ("spike_count" if output.counted else "spike_train") if output.spiking else "membrane"
    from tandem_keras import __version__  # noqa: PLC0415  (avoid an import cycle)

    metadata = {
        "tandem_keras_version": __version__, "time_steps": time_steps, "decoding": decoding,
        "encoding": encoder.encoding, "reset": "subtract", "threshold_rule": "v >= v_threshold",
        "dt": 1.0, "input": f"spike train of the SpikeEncoder '{encoder.name}', [T, batch, C, H, W] "
                            "(tandem_keras.nir.encode_for_nir)",
        "readout": "logits = sum over the T steps of the output",
    }
    # NIR 1.0's type check takes a grouped Conv2d's input channels from its weight (those of
    # one group): a graph with depthwise convolutions is written, and read, without it.
    grouped = any(getattr(node, "groups", 1) != 1 for node in b.nodes.values())
    if grouped:
        metadata["type_check"] = ("off: read this graph with nir.read(path, type_check=False) "
                                  "(NIR 1.0's type check miscounts grouped Conv2d inputs)")
    graph = nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=metadata, type_check=not grouped)
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
    model = flat(model)
    encoder_node, _ = _split_at_encoder(model)
    front = keras.Model(model.inputs, encoder_node.outputs[0])
    spikes = np.asarray(front.predict(images, batch_size=batch_size, verbose=0), np.float32)
    axes = (1, 0) + ((spikes.ndim - 1,) + tuple(range(2, spikes.ndim - 1)) if spikes.ndim > 3 else (2,))
    return np.ascontiguousarray(np.transpose(spikes, axes))
