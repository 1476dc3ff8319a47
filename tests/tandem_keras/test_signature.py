"""Tandem layers are their Keras layers (larq's pattern): Keras's signature and checks, the
tandem arguments keyword only."""
import inspect

import keras
import pytest

import tandem_keras as tk

TANDEM_EXTRAS = {"threshold", "neuron", "batch_norm", "surrogate", "mode", "momentum", "epsilon",
                 "gamma_initializer", "beta_initializer", "moving_mean_initializer",
                 "moving_variance_initializer", "gamma_regularizer", "beta_regularizer",
                 "analog_input"}


@pytest.mark.parametrize("tandem_cls, keras_cls", [(tk.TandemConv2D, keras.layers.Conv2D),
                                                    (tk.TandemDense, keras.layers.Dense)])
def test_keeps_keras_arguments(tandem_cls, keras_cls):
    """The Keras class takes the positional and Keras arguments (its own signature), the
    mixin the tandem ones, keyword only."""
    assert issubclass(tandem_cls, keras_cls)
    params = inspect.signature(tk.TandemLayer.__init__).parameters
    assert [p.kind for p in params.values()][1] == inspect.Parameter.VAR_POSITIONAL
    assert {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY} == TANDEM_EXTRAS
    keras_args = set(inspect.signature(keras_cls.__init__).parameters) - {"self", "kwargs"}
    assert not keras_args & TANDEM_EXTRAS
    args = (4, 3) if keras_cls is keras.layers.Conv2D else (4,)
    assert set(keras_cls(*args).get_config()) <= set(tandem_cls(*args).get_config())


def test_default_padding_is_same_as_the_paper():
    assert tk.TandemConv2D(4, 3).padding == "same" and tk.TandemConv2D(4, 3, 1, "valid").padding == "valid"


@pytest.mark.parametrize("kwargs, message", [
    ({"activation": "relu"}, "activation"),
    ({"groups": 2}, "groups"),
    ({"padding": "causal"}, "padding"),
    ({"data_format": "channels_first"}, "data_format"),
    ({"kernel_size": 0}, "kernel_size"),
])
def test_unsupported_conv_arguments_are_named(kwargs, message):
    args = {"filters": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        tk.TandemConv2D(**args)
