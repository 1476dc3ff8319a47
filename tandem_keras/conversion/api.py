"""``tk.convert``: a trained Keras ANN becomes a tandem SNN with the same weights."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Optional

import keras

from tandem_keras import neurons
from tandem_keras._checks import check_choice, check_time_steps
from tandem_keras.conversion import build, calibrate
from tandem_keras.modes import with_mode


@dataclasses.dataclass
class ConversionReport:
    """What :func:`convert` did: one row per new layer (its ANN layers, kind, threshold),
    the thresholds, the calibration percentiles (ANN activations in units of the ANN's own
    threshold, 1 for Keras ReLUs) and the max-pooling layers replaced."""

    time_steps: int
    rows: list
    thresholds: dict
    percentile: Optional[float] = None
    percentiles: dict = dataclasses.field(default_factory=dict)
    replaced_max_pooling: list = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"tk.convert: T={self.time_steps}, {len(self.thresholds)} spiking layers"
                 + (f", thresholds calibrated at the {self.percentile:g}th percentile"
                    if self.percentile is not None else ", thresholds not calibrated")]
        width = max([len(r.source) for r in self.rows] + [10])
        for r in self.rows:
            theta = "" if r.threshold is None else f" theta={r.threshold:.4g}"
            note = f"  [{r.note}]" if r.note else ""
            lines.append(f"  {r.source:<{width}} -> {r.layer}: {r.kind}{theta}{note}")
        if self.replaced_max_pooling:
            lines.append("  max pooling replaced by average pooling: " + ", ".join(self.replaced_max_pooling))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"time_steps": self.time_steps, "thresholds": dict(self.thresholds),
                "percentile": self.percentile, "percentiles": dict(self.percentiles),
                "replaced_max_pooling": list(self.replaced_max_pooling),
                "rows": [dataclasses.asdict(r) for r in self.rows]}


def convert(model: keras.Model, *, time_steps: int, calibration_data: Any = None,
            percentile: float = 99.9, calibration_batches: int = 8, batch_size: int = 64,
            neuron: Any = None, max_pooling: str = "average", thresholds: Optional[dict] = None,
            trainable_scales: bool = False, negative_spikes: Optional[bool] = None,
            return_report: bool = False):
    """Converts a trained Keras ANN into a tandem SNN with the same weights.

    ``model`` is a Sequential or functional model of ``Conv2D``, ``Dense``,
    ``BatchNormalization``, ReLU (``activation="relu"``, ``ReLU()``, ``Activation("relu")``),
    ``Add``, ``MaxPooling2D``, ``AveragePooling2D``, ``GlobalAveragePooling2D``, ``Flatten``,
    ``Dropout``, ``ZeroPadding2D``, ``Rescaling``/``Normalization`` and ``InputLayer`` (or of
    tandem_keras layers, e.g. the ``model.keras`` of a ``--mode=ann`` run: then conversion
    is a mode switch plus the normalization below). Any other layer is refused
    (:class:`ConversionError`, one line naming the layer and its type). The new model:

    * the layers before the first ReLU stay analog (the first ``Conv2D`` + BN) and that ReLU
      becomes the :class:`~tandem_keras.SpikeEncoder` (front-loaded spikes, ``T`` steps);
    * every ``Conv2D/Dense (+BN) + ReLU`` becomes a ``TandemConv2D/TandemDense`` with IF
      neurons, the BN folded (``batch_norm=True`` with its gamma, beta, moving statistics,
      epsilon, momentum); a ``Conv2D (+BN)`` feeding an ``Add`` becomes a synapse-only layer
      (``neuron=None``) and ``Add + ReLU`` a :class:`~tandem_keras.TandemAdd`;
    * pooling, ``Flatten``, ``Dropout`` (one mask for all steps) and ``ZeroPadding2D`` act on
      every time step; ``MaxPooling2D`` becomes average pooling (a warning, and the report
      says so) or, with ``max_pooling="spiking"``, the spikes' OR (``tk.MaxPooling2D``);
    * the last weighted layer is the readout: ``tk.SpikeCount()`` then the layer itself on
      the counts (the membrane potential), keeping its activation.

    Normalization. A spiking layer ``l`` of threshold ``theta_l`` (the ANN's own:
    ``theta_l^0 = 1`` for a ReLU) emits ``c_l`` spikes, ``c_l ~ clip(floor(y_l / theta_l +
    r), 0, T)`` for the ANN's activation ``y_l`` (``r``: the neuron's ``rounding``). The
    default ``r = 1/2`` rounds; ``r = 0``, the paper's IF, floors and loses half a spike per
    layer on average, which a deep network at small ``T`` cannot afford (method §10).
    Without ``calibration_data`` (or ``thresholds``) a layer made from a Keras ReLU keeps
    ``theta = 1`` and a warning says so.
    With ``s_l = theta_l / theta_l^0`` every reader of layer ``l`` takes ``s_l`` into its
    weights: kernels ``W' = s_l W``, ``TandemAdd`` input weights ``w_i = s_i`` (a synapse-only
    current has ``s = 1``), the readout's kernel. In ``"ann"`` mode every spiking layer
    outputs ``a_l = relu(V_l) / theta_l = y_l / s_l``, so ``tk.with_mode(snn, "ann")``
    computes the ANN's outputs exactly (up to float rounding) whatever the thresholds,
    unless max pooling was replaced.

    Calibration (``calibration_data``: an array, ``(x, y)``, a ``tf.data.Dataset`` or an
    iterable of batches; ``calibration_batches`` batches of ``batch_size``):
    ``theta_l = theta_l^0 * P_p(a_l^0) / T``, the ``percentile``-th percentile ``P_p`` of the
    layer's ANN activation (all elements) over the data, so that an activation at the
    percentile makes ``T`` spikes (the authors' progressive tandem learning uses p = 99.9).
    ``thresholds={name: theta}`` sets thresholds by hand instead. A spiking layer whose
    spikes reach an output without a weighted layer (spike-count decoding) keeps its own.

    Args:
      model: the trained ANN (not modified).
      time_steps: T, the encoding window of the SNN.
      calibration_data, percentile, calibration_batches, batch_size: see above.
      neuron: the neuron of every spiking layer (``"if"``, ``tk.neurons.IF(initial_potential=
        0.5)``, ...); ``None``: ``IF(initial_potential=0.5, negative_spikes=True)`` (counts
        round the activation, method §10; spikes an early surplus fired are taken back, method
        §3.6), or, without negative spikes (``negative_spikes=False``, ``max_pooling=
        "spiking"``), ``IF(initial_potential=0.25, rounding=0.5)`` (half the offset as a
        constant current: fewer early spikes), for Keras layers and for the layers of an
        ``"ann"``-mode tandem model (whose neurons never ran); a tandem_keras layer trained in
        a spiking mode keeps its own.
      max_pooling: ``"average"`` or ``"spiking"``.
      thresholds: ``{new layer name: theta}`` (overrides the calibration for those layers).
      trainable_scales: every :class:`~tandem_keras.TandemAdd`'s input weights become a trained
        weight (``TandemAdd(trainable_scales=True)``) for fine-tuning; also on a tandem model
        (no calibration needed: ``tk.convert(snn, time_steps=T, trainable_scales=True)``).
      negative_spikes: ``True``: every spiking layer's neuron takes back the spikes an early
        surplus fired (``negative_spikes=True``, method §3.6), its count then the quantized
        ANN's; ``False``: none does; ``None`` keeps each neuron's own. Also on a tandem model
        (``tk.convert(snn, time_steps=T, negative_spikes=True)``). SynOps count every spike,
        +1 or -1; NIR has no such neuron (``tk.export_nir`` refuses it).
      return_report: also return a :class:`ConversionReport`.

    Returns:
      The tandem model (uncompiled; a functional ``keras.Model`` in ``"tandem"`` mode), or
      ``(model, report)``.

    Example:
      >>> import keras, numpy as np, tandem_keras as tk
      >>> ann = keras.Sequential([keras.Input((8, 8, 1)),
      ...     keras.layers.Conv2D(4, 3, activation="relu"),
      ...     keras.layers.Conv2D(8, 3, strides=2), keras.layers.BatchNormalization(),
      ...     keras.layers.ReLU(), keras.layers.Flatten(), keras.layers.Dense(10)])
      >>> x = np.random.default_rng(0).random((16, 8, 8, 1), dtype="float32")
      >>> snn = tk.convert(ann, time_steps=4, calibration_data=x)
      >>> [type(layer).__name__ for layer in snn.layers[1:]]
      ['Conv2D', 'SpikeEncoder', 'TandemConv2D', 'TimeFlatten', 'SpikeCount', 'Dense']
      >>> bool(np.allclose(tk.with_mode(snn, "ann")(x), ann(x), atol=1e-5))
      True
      >>> snn(x).shape      # the SNN: spikes over T = 4 steps, membrane-potential readout
      TensorShape([16, 10])
    """
    time_steps = check_time_steps(time_steps, "tk.convert")
    check_choice(max_pooling, "max_pooling", build.MAX_POOLING, "tk.convert")
    if not isinstance(model, keras.Model):
        raise ValueError(f"tk.convert expects a keras.Model, got {type(model).__name__}.")
    if neuron is not None:
        neuron = neurons.get(neuron)
    if negative_spikes is not None and not isinstance(negative_spikes, bool):
        raise ValueError(f"tk.convert: negative_spikes must be True, False or None, got {negative_spikes!r}.")
    settings = dict(time_steps=time_steps, neuron=neuron, max_pooling=max_pooling,
                    trainable_scales=bool(trainable_scales), negative_spikes=negative_spikes)
    found, used_percentile = {}, None
    chosen = dict(thresholds or {})
    if calibration_data is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first, _, spiking, _ = build.rebuild(model, thresholds=None, **settings)
        names = [n for n, (_, calibratable) in spiking.items() if calibratable and n not in chosen]
        found = calibrate.activation_percentiles(with_mode(first, "ann"), names, calibration_data,
                                                 percentile, batch_size, calibration_batches)
        for name, p in found.items():
            if p > 0:
                chosen[name] = spiking[name][0] * p / time_steps
        used_percentile = percentile
    new, rows, spiking, relus = build.rebuild(model, thresholds=chosen, **settings)
    uncalibrated = [name for name in relus if name not in chosen]
    if calibration_data is None and uncalibrated:
        warnings.warn(f"tk.convert: no calibration_data, so {len(uncalibrated)} spiking layers made "
                      f"from ReLUs keep threshold 1 (their counts clip activations above 1 at T="
                      f"{time_steps}); pass a few training batches as calibration_data.", stacklevel=2)
    unknown = set(thresholds or {}) - set(spiking)
    if unknown:
        raise ValueError(f"tk.convert: thresholds for layers that are not spiking layers of the "
                         f"converted model: {', '.join(sorted(unknown))} (spiking: {', '.join(spiking)}).")
    if not return_report:
        return new
    report = ConversionReport(
        time_steps=time_steps, rows=rows,
        thresholds={n: float(new.get_layer(n).threshold) for n in spiking},
        percentile=used_percentile, percentiles=found,
        replaced_max_pooling=[r.layer for r in rows if "was MaxPooling2D" in r.kind])
    return new, report
