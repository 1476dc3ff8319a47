"""Evaluation of an exported tandem model: accuracy, SynOps (SNN) or MACs (ANN), activity, plots.

Everything is computed from the SavedModel directory written by ``tk.export_model``:
the ``serve_activity`` endpoint gives logits and every spiking layer's spike counts,
``assets/tandem_keras.json`` the fan-out chains and ANN MACs (``tandem_keras.synops``) and
what the model is (its mode: an ANN is reported by its MACs, without spike statistics;
``eval.summary``). A SavedModel without them (e.g. a plain ``model.export``) is evaluated
for accuracy only. If the export directory also holds ``model.keras`` (``python -m train``
writes it), the Fig. 7C / Fig. 9 analyses of an SNN run on the first batch.

``--output_json`` and ``--plots_dir`` are checked before anything is evaluated.

Example:
    >>> reports = evaluate_models(["/tmp/export"], dataset="digits",   # doctest: +SKIP
    ...                           split="test", batch_size=128)
    >>> print(format_summary(reports[0]))                              # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from tandem_keras import export, plots, synops
from tandem_keras.metrics import top_k_hits

from common.console import output_problem
from eval.inputs import (EvalError, load_batches, open_model,  # noqa: F401
                         resolve_split, warn)
from eval.export_nir import KERAS_FILE, keras_file_problem
from eval.summary import (ENCODER_NOTE, TIME_STEPS_NOTE, ann_report,  # noqa: F401
                          format_summary, is_ann)



def evaluate(model: export.LoadedModel, batches: Iterable, max_examples: Optional[int] = None,
             keep: int = 64, num_classes: Optional[int] = None) -> tuple[dict, dict]:
    """Runs ``model`` over ``batches`` of ``(images, labels)``.

    Returns ``(report, sample)``: the report holds ``examples``, ``top1_error``,
    ``top5_error`` (percent; top-k with k = min(5, classes)) and, when the SavedModel
    has the activity endpoint, the SynOps report of
    :meth:`tandem_keras.synops.ActivityAccumulator.report` averaged over the examples;
    ``sample`` keeps the first ``keep`` images and labels (for plots, analysis, diagnosis). An ANN
    export (``eval.summary.is_ann``) gets its MACs and energy instead of SynOps.
    ``EvalError`` if the logits are not ``[batch, num_classes]`` (checked on the first batch).
    """
    ann = is_ann(model.kind)
    accumulator = (synops.ActivityAccumulator(model.metadata)
                   if model.has_activity and not ann else None)
    n = top1 = top5 = 0
    sample: dict = {}
    for images, labels in batches:
        images, labels = np.asarray(images), np.asarray(labels).reshape(-1)
        if max_examples is not None:
            images, labels = images[:max_examples - n], labels[:max_examples - n]
        if len(labels) == 0:
            break
        if "images" not in sample:
            sample = {"images": images[:keep], "labels": labels[:keep]}
        elif len(sample["images"]) < keep:
            more = keep - len(sample["images"])
            sample = {"images": np.concatenate([sample["images"], images[:more]]),
                      "labels": np.concatenate([sample["labels"], labels[:more]])}
        if accumulator is not None:
            outputs = {k: np.asarray(v) for k, v in model.activity(images).items()}
            logits = outputs.pop("logits")
            accumulator.update(outputs)
        else:
            logits = np.asarray(model.logits(images))
        if logits.ndim != 2 or logits.shape[0] != len(labels):
            raise EvalError(f"the model returned logits of shape {logits.shape} for "
                            f"{len(labels)} images; expected [batch, classes]")
        if num_classes is not None and logits.shape[1] != num_classes:
            raise EvalError(f"the dataset has {num_classes} classes but the model "
                            f"{model.export_dir!r} outputs {logits.shape[1]}")
        k = min(5, logits.shape[1])
        # The library's one tie rule (ties to the lower class index), as in training.
        top1 += int(np.sum(np.asarray(top_k_hits(logits, labels, 1))))
        top5 += int(np.sum(np.asarray(top_k_hits(logits, labels, k))))
        n += len(labels)
        if max_examples is not None and n >= max_examples:
            break
    if n == 0:
        raise EvalError("the evaluation split has no examples")
    report: dict = {"saved_model": model.export_dir, "examples": n,
                    "top1_error": 100.0 * (1 - top1 / n), "top5_error": 100.0 * (1 - top5 / n),
                    "model": model.kind}
    if ann and model.metadata is not None:
        report.update(ann_report(model.metadata))
        report["time_steps"] = model.metadata["time_steps"] if model.kind["mode"] == "quantized" else None
    elif accumulator is not None:
        report.update(accumulator.report())
        report["examples"] = n
        report["spiking_depth"] = model.metadata["spiking_depth"]
        report["notes"] = {"encoder": ENCODER_NOTE, "inference_time_steps": TIME_STEPS_NOTE}
        report["synops_available"] = True
        report["network"] = "snn"
    else:
        meta = model.metadata or {}
        report.update({"time_steps": meta.get("time_steps"),
                       "inference_time_steps": meta.get("inference_time_steps"),
                       "synops_available": False})
    return report, sample


def _keras_model(export_dir: str) -> Any:
    """The export's ``model.keras`` (None without one)."""
    path = os.path.join(export_dir, KERAS_FILE)
    if not os.path.isfile(path):
        return None
    problem = keras_file_problem(path)
    if problem:
        raise ValueError(problem)
    import keras

    import tandem_keras  # noqa: F401 - registers the layers for deserialization

    return keras.models.load_model(path, compile=False)


def _analysis(export_dir: str, images: np.ndarray) -> Optional[tuple[dict, list]]:
    model = _keras_model(export_dir)
    if model is None:
        return None
    from tandem_keras import analysis

    return analysis.direction_preservation(model, images), analysis.representation_error(model, images)


def _diagnosis(export_dir: str, sample: dict, examples: int) -> Optional[dict]:
    """:func:`tandem_keras.diagnosis.diagnose` on the first ``examples`` of ``sample``."""
    model = _keras_model(export_dir)
    if model is None:
        return None
    from tandem_keras.diagnosis import diagnose

    d = diagnose(model, sample["images"][:examples], sample["labels"][:examples])
    return {"examples": d.examples, "time_steps": d.time_steps, "layers": d.layers,
            "prefix_errors": [{"k": k, "layer": name, "top1_error": 100 * e} for k, name, e in d.prefix_errors],
            "errors": {k: 100 * v for k, v in d.errors.items()}, "table": d.table()}


def write_plots(reports: Sequence[dict], models: Sequence[export.LoadedModel],
                samples: Sequence[dict], plots_dir: str, analyses: Sequence[Any]) -> list[str]:
    """Writes the PNG figures for the evaluated models into ``plots_dir``; returns the paths."""
    written = []
    several = len(reports) > 1
    for i, (report, model, sample, extra) in enumerate(zip(reports, models, samples, analyses)):
        prefix = f"model{i}_" if several else ""
        if report.get("synops_available"):
            written.append(plots.plot_spike_counts(
                report, os.path.join(plots_dir, f"{prefix}spike_counts.png")))
        if model.has_spikes and "images" in sample and report.get("network") != "ann":
            raw = model.spikes(sample["images"][:1])
            order = [layer["name"] for layer in (model.metadata or {}).get("layers", [])]
            names = [n for n in order if n in raw and n != "logits"] + sorted(set(raw) - set(order) - {"logits"})
            trains = {k: np.asarray(raw[k])[0] for k in names}  # network order, not a-z
            written.append(plots.plot_spike_raster(
                trains, os.path.join(plots_dir, f"{prefix}spike_raster.png")))
            counts = {k: v.sum(0) for k, v in trains.items()}
            ann = None
            if extra is not None:
                ann = {k: v["ann_counts"][0] for k, v in extra[0].items()}
            if any(v.ndim == 3 for v in counts.values()):
                written.append(plots.plot_count_maps(
                    counts, os.path.join(plots_dir, f"{prefix}spike_count_maps.png"),
                    ann_counts=ann, time_steps=report.get("time_steps")))
        if extra is not None:
            written.append(plots.plot_direction_preservation(
                extra[0], os.path.join(plots_dir, f"{prefix}direction_preservation.png")))
            written.append(plots.plot_representation_error(
                extra[1], os.path.join(plots_dir, f"{prefix}representation_error.png")))
    steps = [r.get("time_steps") for r in reports]
    if several and all(s is not None for s in steps):
        written.append(plots.plot_error_vs_time_steps(
            steps, [r["top1_error"] for r in reports],
            os.path.join(plots_dir, "error_vs_time_steps.png"), ylabel="top-1 error (%)"))
    return written


def evaluate_models(saved_models: Sequence[str], dataset: Optional[str] = None, split: str = "test",
                    batch_size: int = 256, data_dir: Optional[str] = None,
                    validation_split: Optional[float] = None, max_examples: Optional[int] = None,
                    plots_dir: Optional[str] = None, output_json: Optional[str] = None,
                    analysis: bool = True, quiet: bool = False,
                    skip_bad_images: Optional[bool] = None, diagnosis_examples: int = 0) -> list[dict]:
    """Evaluates each SavedModel on ``dataset``/``split``; prints, writes JSON and plots.

    ``dataset`` and ``validation_split`` default to what each export recorded of its
    training (:func:`resolve_split`); ``split="all"`` is every example of the dataset.
    ``skip_bad_images`` (folders): leave out undecodable files (default: as in training).
    ``diagnosis_examples``: also :func:`tandem_keras.diagnosis.diagnose` an SNN on that many
    of the first examples (its ``model.keras``): the report's ``"diagnosis"``.

    The JSON is the report of the single model, or ``{"models": [reports]}`` for several.
    """
    if not saved_models:
        raise EvalError("--saved_model is required")
    for flag, path, directory in (("output_json", output_json, False), ("plots_dir", plots_dir, True)):
        problem = path is not None and output_problem(path, directory)
        if problem:
            raise EvalError(f"--{flag}={path}: {problem}")
    if batch_size < 1:
        raise EvalError(f"--batch_size must be >= 1, got {batch_size}")
    if max_examples is not None and max_examples < 1:
        raise EvalError(f"--max_examples must be >= 1, got {max_examples}")
    if diagnosis_examples < 0:
        raise EvalError(f"--diagnosis_examples must be >= 0, got {diagnosis_examples}")
    reports, models, samples, analyses = [], [], [], []
    for path in saved_models:
        model = open_model(path)
        if not model.has_activity:
            warn(f"{path}: no '{export.SERVE_ACTIVITY}' endpoint or tandem_keras metadata: "
                 "evaluating accuracy only, SynOps and spike counts are unavailable")
        model_dataset, model_split = resolve_split(model, dataset, split, validation_split)
        batches, count, num_classes = load_batches(model_dataset, split, batch_size,
                                                   model.input_shape, data_dir, model_split,
                                                   model=model, skip_bad_images=skip_bad_images)
        if model.metadata is not None and model.metadata["num_classes"] != num_classes:
            raise EvalError(f"dataset {model_dataset!r} has {num_classes} classes but the model "
                            f"{path!r} outputs {model.metadata['num_classes']}")
        recorded = (model.training or {}).get(f"num_{split}")
        if recorded is not None and recorded != count:
            warn(f"{path}: the {split} split has {count} examples, training had {recorded} "
                 "(has the dataset changed since?)")
        report, sample = evaluate(model, batches, max_examples, num_classes=num_classes,
                                  keep=max(64, diagnosis_examples))
        report.update(dataset=model_dataset, split=split, validation_split=model_split)
        extra = None
        if analysis and report.get("network") != "ann":
            try:
                extra = _analysis(path, sample["images"])
            except Exception as error:  # noqa: BLE001 - the analyses are optional
                warn(f"{path}: Fig. 7C / Fig. 9 analyses skipped: "
                     f"{str(error).splitlines()[0] if str(error) else type(error).__name__}")
            if extra is not None:
                from tandem_keras.analysis import summarize

                report["analysis"] = {"examples": int(len(sample["images"])),
                                      "direction_preservation": summarize(extra[0]),
                                      "representation_error": extra[1]}
        if diagnosis_examples and report.get("network") != "ann":
            diagnosis = _diagnosis(path, sample, diagnosis_examples)
            if diagnosis is None:
                warn(f"{path}: no {KERAS_FILE}: the diagnosis needs the Keras model")
            else:
                report["diagnosis"] = diagnosis
        reports.append(report)
        models.append(model)
        samples.append(sample)
        analyses.append(extra)
        if not quiet:
            print(format_summary(report))
    if plots_dir is not None:
        for path in write_plots(reports, models, samples, plots_dir, analyses):
            if not quiet:
                print(f"wrote {path}")
    if output_json is not None:
        directory = os.path.dirname(os.path.abspath(output_json))
        os.makedirs(directory, exist_ok=True)
        with open(output_json, "w") as f:
            json.dump(_strict(reports[0] if len(reports) == 1 else {"models": reports}), f,
                      indent=1, default=_json_default, allow_nan=False)
        if not quiet:
            print(f"wrote {output_json}")
    return reports


def _strict(value: Any) -> Any:
    """NaN / infinity (e.g. the angle of a silent layer) -> None, so the JSON is strict."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
