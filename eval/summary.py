"""What ``python -m eval`` says about a model: what it is (an ANN or an SNN), and its report.

An export records the mode of the model it holds (``tandem_keras.export.model_kind``). A
model in ``"ann"`` or ``"quantized"`` mode is an ANN: its activations are real values (or,
quantized, integers sent on as they are), not spikes, so it is reported by its MACs and
their energy, without spike counts, firing rates or SynOps. A ``"tandem"`` or ``"bptt"``
model is an SNN; one trained in ``"quantized"`` mode and exported in ``"tandem"`` mode
(``--export_mode=tandem``) is the constrain-then-train SNN and is reported as that SNN.
A SavedModel without the metadata (a plain ``model.export()``) is evaluated for accuracy only.

Example:
    >>> describe({"mode": "quantized", "trained_mode": "quantized", "decoding": "membrane"}, 4)
    'quantized ANN (--mode=quantized, T=4 levels), membrane decoding'
    >>> describe({"mode": "tandem", "trained_mode": "quantized", "decoding": "membrane",
    ...           "neuron": "if"}, 4)
    'tandem SNN, constrain-then-train (trained as --mode=quantized, exported as --export_mode=tandem), IF neurons, T=4, membrane decoding'
    >>> describe({"mode": "tandem", "decoding": "membrane",
    ...           "neuron": {"class_name": "IF", "config": {"initial_potential": 0.5}}}, 4)
    'tandem SNN, IF(initial_potential=0.5) neurons, T=4, membrane decoding'
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from tandem_keras import synops
from tandem_keras.export import ANN_MODES

ENCODER_NOTE = (
    "synops_snn counts accumulates of spikes (Eq. 13), every spiking layer (encoder "
    "included) into the layers its spikes reach; encoder_macs are the analog MACs of the "
    "encoding layer's convolution on the image (computed once per example), not in "
    "synops_snn but in synops_ann (Eq. 14, all layers) and in energy_snn_joules at "
    "4.6 pJ/MAC; synops_ratio_with_encoder counts them as SNN work.")
TIME_STEPS_NOTE = (
    "inference_time_steps = time_steps + spiking_depth, the number of spiking layers "
    "(encoder and tandem layers) on the longest path (method §5).")
ANN_NOTE = (
    "an ANN (mode ann or quantized): macs are the multiply-accumulates of every weighted "
    "layer per example (Eq. 14), energy_joules = macs x energy per MAC; ANN activations are "
    "not spikes, so no spike counts, rates or SynOps are reported.")
NAMES = {"ann": "ReLU ANN", "quantized": "quantized ANN", "tandem": "tandem SNN",
         "bptt": "SNN (BPTT)"}


def is_ann(kind: Mapping[str, Any]) -> bool:
    """True for an export recorded as an ANN (mode ``ann`` or ``quantized``)."""
    return kind.get("mode") in ANN_MODES


def describe(kind: Mapping[str, Any], time_steps: Optional[int]) -> str:
    """One line: what the model is, as its export records it."""
    mode = kind.get("mode")
    if mode is None:
        return "a SavedModel without tandem_keras metadata (accuracy only)"
    if not isinstance(mode, str):
        return f"a model with layers in modes {', '.join(map(str, mode))}"
    parts = [NAMES.get(mode, mode)]
    trained = kind.get("trained_mode")
    if mode == "quantized":
        parts[0] += f" (--mode=quantized, T={time_steps} levels)"
    elif mode == "ann":
        parts[0] += " (--mode=ann)"
    elif trained == "quantized" and mode == "tandem":
        parts.append("constrain-then-train (trained as --mode=quantized, exported as "
                     "--export_mode=tandem)")
    elif trained and trained != mode:
        parts.append(f"trained as --mode={trained}, exported as --export_mode={mode}")
    if not is_ann(kind):
        neuron = kind.get("neuron")
        if isinstance(neuron, str):
            parts.append(f"{neuron.upper()} neurons")
        elif isinstance(neuron, dict) and "class_name" in neuron:  # tk.neurons.serialize's config
            options = ", ".join(f"{k}={v}" for k, v in (neuron.get("config") or {}).items())
            parts.append(f"{neuron['class_name']}({options}) neurons")
        elif neuron:
            parts.append(f"neurons {neuron}")
        parts.append(f"T={time_steps}")
    if kind.get("decoding"):
        parts.append(f"{kind['decoding']} decoding")
    return ", ".join(parts)


def ann_report(metadata: Mapping[str, Any], device: Any = None) -> dict:
    """MACs and energy of an ANN export, per example, from its metadata (no spikes)."""
    device = synops.devices.get_device(device)
    layers = [{"name": r["name"], "kind": r["kind"], "neurons": r["neurons"],
               "ann_macs": r["macs"]} for r in metadata["layers"]]
    macs = int(sum(r["ann_macs"] for r in layers))
    return {"network": "ann", "macs": macs, "device": device.name,
            "energy_per_mac_joules": device.energy_per_mac,
            "energy_joules": device.energy_per_mac * macs, "layers": layers,
            "synops_available": False, "notes": {"ann": ANN_NOTE}}


def _ann_lines(report: Mapping[str, Any]) -> list[str]:
    rows = [(r["name"], r["kind"], f"{r['neurons']:,}", f"{r['ann_macs']:,}")
            for r in report["layers"]]
    widths = [max(len(row[i]) for row in [("layer", "kind", "neurons", "MACs"), *rows])
              for i in range(4)]
    fmt = lambda row: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths)))
    rule = "-" * len(fmt(("layer", "kind", "neurons", "MACs")))
    return [fmt(("layer", "kind", "neurons", "MACs")), rule, *map(fmt, rows), rule,
            f"MACs per example: {report['macs']:,}",
            f"Energy per example ({report['device']}, "
            f"{report['energy_per_mac_joules'] * 1e12:.1f} pJ/MAC): {report['energy_joules']:.3e} J"]


def format_summary(report: Mapping[str, Any]) -> str:
    """Accuracy lines, what the model is, and its MACs (ANN) or SynOps table (SNN)."""
    kind = report.get("model") or {}
    lines = [f"SavedModel: {report['saved_model']}",
             f"model: {describe(kind, report.get('time_steps'))}",
             f"examples: {report['examples']}   top-1 error: {report['top1_error']:.2f}%   "
             f"top-5 error: {report['top5_error']:.2f}%"]
    if report.get("network") == "ann":
        return "\n".join(lines + _ann_lines(report))
    lines.append(f"time steps: {report.get('time_steps')}   inference time steps: "
                 f"{report.get('inference_time_steps')}")
    if report.get("synops_available"):
        lines.append(synops.format_report(report))
    else:
        lines.append("SynOps: unavailable (no serve_activity endpoint / tandem_keras metadata)")
    if "analysis" in report:
        result = report["analysis"]
        lines.append(f"ANN vs SNN on {result['examples']} examples (Fig. 9: angle between c and "
                     "a, PCC of W c and W a; Fig. 7C: mean |c - a| against the quantized ANN):")
        error = {r["name"]: r["mean_abs_diff"] for r in result["representation_error"]}
        for row in result["direction_preservation"]:
            pcc = "-" if row["pcc"] is None else f"{row['pcc']:.3f}"
            lines.append(f"  {row['name']:<20} angle {row['angle_deg']:6.2f} deg   PCC {pcc:>6}   "
                         f"|c - a| {error.get(row['name'], float('nan')):.4f}")
    if "diagnosis" in report:
        d = report["diagnosis"]
        lines.append(f"diagnosis on {d['examples']} examples (tk.diagnosis; c: SNN count, q: the coupled "
                     "ANN's rounded count of the layer's SNN input, Q: the quantized ANN's):")
        lines.append(d["table"])
    return "\n".join(lines)
