"""Models that use other models as layers (a backbone, ``keras.applications`` style), flattened.

Everything that walks a model's graph (SynOps, the activity endpoint, NIR, ``tk.convert``,
``tk.with_mode``) reads one flat graph of layers. :func:`flat` returns a functional model
that calls the same layers (shared: their weights are the model's own, live) or copies of
them along one graph without the nested models: every nested functional or Sequential
model's graph is inlined where it is called, with the ``training`` argument it was called
with passed on to its layers. A model without nested models is returned as it is.

A nested model without a graph (a subclassed ``keras.Model``) cannot be inlined: refused in
one line naming it.

Example:
  >>> import keras
  >>> inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")], name="inner")
  >>> x = keras.Input((3,))
  >>> model = keras.Model(x, keras.layers.Dense(1, name="out")(inner(x)))
  >>> [layer.name for layer in flat(model).layers[1:]]
  ['d', 'out']
  >>> flat(model).get_layer("d") is inner.get_layer("d")
  True
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import keras


def nested_models(model: Any) -> list:
    """The models used as layers inside ``model`` (recursively), outermost first."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            found.append(layer)
            found.extend(nested_models(layer))
    return found


def _graph(model: Any, outer: Any) -> keras.Model:
    """``model`` as a functional model over its own layers (a Sequential's graph)."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        where = f" inside {outer.name!r}" if outer is not model else ""
        raise ValueError(f"nested model {model.name!r}{where} ({type(model).__name__}) has no graph "
                         "of layers to read (a subclassed keras.Model): build it as a functional "
                         "or Sequential model, or a flat model.")
    if isinstance(model, keras.Sequential):
        one = lambda tensors: tensors[0] if len(tensors) == 1 else tensors  # noqa: E731
        return keras.Model(one(inputs), one(outputs), name=model.name)
    return model


def flat(model: Any, copy: Optional[Callable[[Any], Any]] = None) -> Any:
    """``model`` with its nested models inlined (see the module); ``model`` itself if it has none.

    Args:
      model: a functional or Sequential ``keras.Model``.
      copy: ``layer -> new layer`` (not built) to build the flat model from copies (each
        layer copied once, so a shared layer stays shared); the copies get the layers'
        weights. None: the flat model calls ``model``'s own layers.

    Raises:
      ValueError: a nested model without a graph, or two layers of one name, naming them.
    """
    if not nested_models(model):
        return model
    copies: dict[int, Any] = {}
    pairs: list = []

    def operation(layer):
        if isinstance(layer, keras.Model) or copy is None:
            return layer
        if id(layer) not in copies:
            copies[id(layer)] = copy(layer)
            pairs.append((layer, copies[id(layer)]))
        return copies[id(layer)]

    def call_with(training):
        def call(layer, *args, **kwargs):
            if training is not None:   # the nested model's call fixed it for its layers
                kwargs["training"] = training
            if isinstance(layer, keras.Model):
                inner_training = kwargs.get("training", training)
                inner = keras.models.clone_model(_graph(layer, model), input_tensors=args[0],
                                                 clone_function=operation,
                                                 call_function=call_with(inner_training))
                return inner.outputs if len(inner.outputs) > 1 else inner.outputs[0]
            return layer(*args, **kwargs)
        return call

    try:
        flat_model = keras.models.clone_model(_graph(model, model), clone_function=operation,
                                              call_function=call_with(None))
    except ValueError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "nested model" in first:
            raise
        raise ValueError(f"cannot flatten the nested models "
                         f"{', '.join(repr(m.name) for m in nested_models(model))} of "
                         f"{model.name!r}: {first}") from None
    for old, new in pairs:
        new.set_weights(old.get_weights())
    return flat_model
