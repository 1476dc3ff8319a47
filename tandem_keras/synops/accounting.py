"""SynOps accounting of spike counts against a model description (Eq. 13-14).

:class:`ActivityAccumulator` takes the description written by
:func:`tandem_keras.describe_model` (also in an exported SavedModel's assets) and per-layer
spike counts batch by batch, and reports per-example SynOps, MACs and energy. It needs no
model code, so ``python -m eval`` counts SynOps from the SavedModel directory alone.

Description formats: ``tandem_keras.activity/2`` (spiking rows hold ``fanout_chains``,
chains of op specs through pooling and merges) and ``tandem_keras.activity/1``
(``fanout_specs``, one convolution or dense spec per chain, as in the committed exports under
``bench/models``), read alike.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from tandem_keras.synops import composite, devices

#: Metadata format written by :func:`tandem_keras.describe_model` (and ``export_model``).
METADATA_FORMAT = "tandem_keras.activity/2"
#: Formats :class:`ActivityAccumulator` reads (``/1``: one spec per chain).
METADATA_FORMATS = ("tandem_keras.activity/1", METADATA_FORMAT)


def fanout_chains(row: Mapping[str, Any]) -> list:
    """The chains of a description row (format 2), or its ``fanout_specs`` as chains (format 1)."""
    if "fanout_chains" in row:
        return [list(chain) for chain in row["fanout_chains"]]
    return [[spec] for spec in row.get("fanout_specs", [])]


def row_fanout(row: Mapping[str, Any]) -> np.ndarray:
    """Exact fan-out of every neuron of a :func:`tandem_keras.describe_model` row, shape ``row["shape"]``.

    Summed over the weighted operations its spikes reach, each through its composite map.
    """
    return composite.chain_fanout(row["shape"], fanout_chains(row), row["name"])


class ActivityAccumulator:
    """Accumulates per-layer spike counts over batches and reports SynOps (Eq. 13-14).

    ``update(counts)`` takes ``{layer name: counts [batch, ...]}`` (the output of
    :func:`tandem_keras.synops.activity_model` or of the exported ``serve_activity`` endpoint);
    :meth:`report` gives per-example averages. Since Eq. 13 is linear in the counts,
    only the per-neuron sums are kept.

    Example:
        >>> acc = ActivityAccumulator(describe_model(m))           # doctest: +SKIP
        >>> acc.update(activity_model(m)(images)); acc.report()["synops_snn"]  # doctest: +SKIP
    """

    def __init__(self, description: Mapping[str, Any]) -> None:
        if description.get("format") not in METADATA_FORMATS:
            raise ValueError(f"not a tandem_keras activity description (format "
                             f"{description.get('format')!r}, expected one of "
                             f"{', '.join(METADATA_FORMATS)})")
        self.description = description
        self.rows = list(description["layers"])
        self._fanouts = {r["name"]: row_fanout(r).reshape(-1) for r in self.rows if r["spiking"]}
        self._sums = {name: np.zeros(f.size) for name, f in self._fanouts.items()}
        self.num_examples = 0

    def update(self, counts: Mapping[str, Any]) -> None:
        batch = None
        for name in self._sums:
            if name not in counts:
                raise KeyError(f"spike counts of layer {name!r} missing "
                               f"(got {sorted(k for k in counts if k != 'logits')})")
            c = np.asarray(counts[name])
            c = c.reshape(c.shape[0], -1)
            if c.shape[1] != self._sums[name].size:
                raise ValueError(f"layer {name!r}: counts have {c.shape[1]} neurons, "
                                 f"expected {self._sums[name].size}")
            if batch is not None and c.shape[0] != batch:
                raise ValueError("spike counts of different layers have different batch sizes")
            batch = c.shape[0]
            self._sums[name] += c.sum(axis=0, dtype=np.float64)  # exact: integer counts
        self.num_examples += int(batch or 0)

    def report(self, device: Any = None) -> dict:
        """Per-example SynOps, MACs, ratio, energy, and a row per layer (see module doc).

        ``synops_snn`` counts accumulates of spikes (Eq. 13); the encoder's analog MACs
        (its convolution on the image, computed once) are ``encoder_macs``, not in
        ``synops_snn``; ``synops_ann`` is Eq. 14 over all layers, encoder included;
        ``synops_ratio = synops_snn / synops_ann`` (and ``synops_ratio_with_encoder =
        (synops_snn + encoder_macs) / synops_ann``, counting the encoder's MACs as SNN work).
        ``energy_snn_joules = e_AC * synops_snn + e_MAC * encoder_macs``,
        ``energy_ann_joules = e_MAC * synops_ann`` on ``device`` (a registered name, default
        ``"horowitz_45nm"``: ``e_AC`` = 0.9 pJ, ``e_MAC`` = 4.6 pJ); ``device`` names it.
        """
        n = max(self.num_examples, 1)
        t = int(self.description["time_steps"])
        layers = []
        for row in self.rows:
            entry = {"name": row["name"], "kind": row["kind"], "neurons": row["neurons"],
                     "avg_spike_count": None, "firing_rate": None, "mean_fanout": 0.0,
                     "synops": 0.0, "ann_macs": row["macs"]}
            if row["spiking"]:
                sums, fan = self._sums[row["name"]], self._fanouts[row["name"]]
                entry["avg_spike_count"] = float(sums.sum() / n / row["neurons"])
                entry["firing_rate"] = entry["avg_spike_count"] / t
                entry["mean_fanout"] = float(fan.mean())
                entry["synops"] = float(sums @ fan / n)
            layers.append(entry)
        snn = float(sum(e["synops"] for e in layers))
        ann = int(sum(r["macs"] for r in self.rows))
        encoder = int(sum(r["macs"] for r in self.rows if r["kind"] in ("encoder", "analog")))
        return {
            "examples": self.num_examples,
            "time_steps": t,
            "inference_time_steps": int(self.description["inference_time_steps"]),
            "synops_snn": snn,
            "synops_ann": ann,
            "synops_ratio": snn / ann if ann else float("nan"),
            "encoder_macs": encoder,
            "synops_ratio_with_encoder": (snn + encoder) / ann if ann else float("nan"),
            "device": devices.get_device(device).name,
            "energy_snn_joules": devices.energy_joules(snn, encoder, device),
            "energy_ann_joules": devices.energy_joules(0.0, ann, device),
            "layers": layers,
        }
