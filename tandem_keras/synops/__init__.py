"""SynOps, ANN MACs and energy of a tandem model: the one place that reads a model for them.

Modules (method §6):

* :mod:`~tandem_keras.synops.ops`: operation specs (convolutions, depthwise, separable, dense,
  identity synapses, pooling, concatenation): connections per axis, output shapes, fan-in,
  MACs;
* :mod:`~tandem_keras.synops.layer_specs`: a layer's linear map as an op spec, read from its
  arguments (the registry of layer kinds, :mod:`tandem_keras.kinds`, refers to these);
* :mod:`~tandem_keras.synops.composite`: the exact fan-out of the composite linear map of a
  spike's path, SynOps from counts (pure NumPy);
* :mod:`~tandem_keras.synops.devices`: devices' energy (:func:`register_device`);
* :mod:`~tandem_keras.synops.graph`: walks a Keras model's graph
  (:func:`describe_model`, :func:`activity_model`);
* :mod:`~tandem_keras.synops.accounting`: SynOps from spike counts and a description,
  without model code (:class:`ActivityAccumulator`; what ``python -m eval`` uses);
* :mod:`~tandem_keras.synops.report`: :func:`count_synops`, :func:`summary` and the tables;
* :mod:`~tandem_keras.synops.logger`: :class:`ActivityLogger`, the Keras callback.

Example:
    >>> import keras, numpy as np, tandem_keras as tk
    >>> m = keras.Sequential([keras.Input((4,)), tk.SpikeEncoder(2),
    ...                       tk.TandemDense(3, batch_norm=False), tk.SpikeCount()])
    >>> tk.synops.count_synops(m, np.array([[2., 0., 1., 5.]], "float32"))["synops_snn"]
    15.0
"""

from tandem_keras.synops import composite, devices, layer_specs, ops
from tandem_keras.synops.accounting import (METADATA_FORMAT, METADATA_FORMATS,
                                            ActivityAccumulator, fanout_chains, row_fanout)
from tandem_keras.synops.graph import activity_model, describe_model
from tandem_keras.synops.logger import ActivityLogger
from tandem_keras.synops.composite import (chain_fanout, connections, conv2d_fanout,
                                           dense_fanout, fanout, synops_from_counts)
from tandem_keras.synops.ops import axis_coverage, conv_output_length, fanin, macs, output_shape
from tandem_keras.synops.devices import energy_joules, register_device
from tandem_keras.synops.report import count_synops, format_description, format_report, summary

__all__ = [
    "METADATA_FORMAT", "METADATA_FORMATS", "ActivityAccumulator", "ActivityLogger",
    "activity_model", "axis_coverage", "chain_fanout", "composite", "connections", "conv2d_fanout",
    "conv_output_length", "count_synops", "dense_fanout", "describe_model", "energy_joules",
    "fanin", "fanout", "fanout_chains", "format_description", "format_report", "macs", "ops",
    "output_shape", "register_device", "row_fanout", "summary", "devices", "layer_specs",
    "synops_from_counts",
]
