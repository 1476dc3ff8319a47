"""The library's only uses of private Keras attributes, in one place, with the reason.

Keras 3 has no public API for two things the library needs:

* the *call graph* of a functional model (which layer call feeds which): the SynOps
  report needs, for every spiking layer, the weighted layers its spikes reach, and
  ``export_nir`` the edges of the NIR graph.
  ``model.layers`` gives no edges and ``model.get_config()`` gives names without
  tensors' shapes. Each symbolic tensor's ``_keras_history`` ``(operation, node index,
  tensor index)`` and each operation's ``_inbound_nodes`` are the graph Keras itself
  walks (``keras.src.ops.function.Function``);
* every layer of a model *recursively*, including the layers of a subclassed model and of
  nested layers (``set_mode``): ``model.layers`` is one level only. ``_flatten_layers`` is
  what Keras uses for that itself (weights tracking, ``summary``).

``tests/tandem_keras/test_registry.py`` (``test_keras_internals_graph_and_layers_on_pinned_keras``)
checks both against the pinned Keras version, so that a Keras release that changes them fails
there, in one place; ``tests/tandem_keras/test_library_conventions.py`` checks that no other
library module reads a private attribute.
"""

from __future__ import annotations

from typing import Any, Iterator


def call_nodes(model: Any) -> tuple[list, dict]:
    """Topologically ordered call nodes of a functional ``model``, and their consumers.

    Returns ``(nodes, consumers)``: every non-input ``keras`` ``Node`` (with
    ``.operation``, ``.input_tensors``, ``.outputs``) in an order where producers come
    before consumers, and ``{id(tensor): [nodes reading it]}``.

    Raises:
      ValueError: ``model`` is not a ``keras.Model`` or has no symbolic graph.
      NotImplementedError: a nested model inside ``model``.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError(f"expected a keras.Model, got {type(model).__name__}")
    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"model {model.name!r} has no symbolic graph (build a functional or Sequential "
            f"model with keras.Input): {error}") from None
    nodes, seen = [], set()

    def visit(tensor: Any) -> None:
        op, node_index, _ = tensor._keras_history
        if op is None:
            return
        node = op._inbound_nodes[node_index]
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.input_tensors:
            visit(parent)
        if not node.is_input:
            if isinstance(op, keras.Model):
                raise NotImplementedError(
                    f"nested model {op.name!r} inside {model.name!r}: build a flat model")
            nodes.append(node)

    for tensor in outputs:
        visit(tensor)
    consumers: dict = {}
    for node in nodes:
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    return nodes, consumers


def all_layers(model: Any) -> Iterator[Any]:
    """Every layer inside ``model``, recursively (nested models and layers included)."""
    return iter(model._flatten_layers(include_self=False, recursive=True))


def producer(tensor: Any) -> tuple[Any, list]:
    """The layer whose call made the symbolic ``tensor``, and that call's input tensors.

    ``(None, [])`` for a model input or for anything that is not a symbolic Keras tensor
    (an eager or traced tensor carries no history). Used at model-building time by the
    tandem layers' input checks (which layer feeds them).
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None or history[0] is None:
        return None, []
    op, node_index, _ = history
    node = op._inbound_nodes[node_index]
    if node.is_input:
        return None, []
    return op, list(node.input_tensors)
