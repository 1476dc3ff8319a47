"""Tandem layers keep the Keras signature of Conv2D / Dense (as larq's layers test does)."""
import inspect

import keras
import pytest

import tandem_keras as tk

# Arguments of the Keras layers that have no meaning for a spiking layer.
NOT_APPLICABLE = {"lora_rank", "lora_alpha", "quantization_config"}
TANDEM_EXTRAS = {"threshold", "neuron", "batch_norm", "surrogate", "mode", "momentum", "epsilon",
                 "gamma_initializer", "beta_initializer", "moving_mean_initializer",
                 "moving_variance_initializer", "gamma_regularizer", "beta_regularizer",
                 "analog_input"}


def _parameters(cls):
    names = set()
    for klass in cls.__mro__:
        if klass is keras.layers.Layer:
            break
        if "__init__" in klass.__dict__:
            params = inspect.signature(klass.__init__).parameters
            names |= {n for n, p in params.items() if n != "self" and p.kind != p.VAR_KEYWORD}
    return names


@pytest.mark.parametrize("tandem_cls, keras_cls", [(tk.TandemConv2D, keras.layers.Conv2D),
                                                    (tk.TandemDense, keras.layers.Dense)])
def test_keeps_keras_arguments(tandem_cls, keras_cls):
    params = inspect.signature(keras_cls.__init__).parameters
    keras_args = {n for n, p in params.items() if n != "self" and p.kind != p.VAR_KEYWORD}
    keras_args -= NOT_APPLICABLE
    tandem_args = _parameters(tandem_cls)
    assert keras_args <= tandem_args, f"missing: {sorted(keras_args - tandem_args)}"
    assert tandem_args - keras_args == TANDEM_EXTRAS


def test_default_padding_is_same_as_the_paper():
    assert inspect.signature(tk.TandemConv2D.__init__).parameters["padding"].default == "same"


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
