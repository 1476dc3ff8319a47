"""Results records: every benchmark and reproduction result, with how it was made.

A record is one JSON object with a fixed schema::

    {"schema": "tandem_keras.record/1", "kind": "train_step", "command": "python -m ...",
     "config": {...}, "commit": "<git sha>" | null, "dirty": bool | null,
     "versions": {"python", "tensorflow", "keras", "numpy", "tandem_keras"},
     "machine": {"cpu", "cores", "memory_gib", "loadavg_1_5_15", "platform"},
     "date_utc": "YYYY-MM-DDTHH:MM:SSZ", "figures": {...}}

(optional: ``"converted_from"`` and ``"note"`` for results converted from an older file,
whose commit is unknown: ``null``, never guessed). Records are appended, one a line, to
``bench/results/records.jsonl`` (:data:`RECORDS`); nothing rewrites or deletes a line.
``python -m bench.tables`` turns them into the Markdown tables of the docs.

Example:
  >>> import tempfile, os
  >>> path = os.path.join(tempfile.mkdtemp(), "records.jsonl")
  >>> r = write("example", {"images_per_s": 9.4}, config={"T": 10}, path=path)
  >>> [sorted(r) == sorted(FIELDS), read(path)[0]["figures"], read(path)[0]["schema"]]
  [True, {'images_per_s': 9.4}, 'tandem_keras.record/1']
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable, Hashable, Iterable, Mapping, Optional, Sequence

SCHEMA = "tandem_keras.record/1"
FIELDS = ("schema", "kind", "command", "config", "commit", "dirty", "versions", "machine",
          "date_utc", "figures")
OPTIONAL = ("converted_from", "note")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "bench", "results", "records.jsonl")
#: what runs write (records, figures, trained models): not code, so not "dirty"
OUTPUTS = ("bench/results", "bench/figures", "bench/models")


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def commit() -> tuple[Optional[str], Optional[bool]]:
    """``(HEAD's sha, dirty)`` of the checkout (``dirty``: tracked files other than the
    results themselves, :data:`OUTPUTS`, differ from HEAD); ``(None, None)`` outside a git
    checkout (e.g. an installed wheel). A run that appends several records is not made
    dirty by its own first record."""
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){path}" for path in OUTPUTS))
    return sha.strip(), (None if status is None else bool(status.strip()))


def versions() -> dict[str, Optional[str]]:
    """Python and the packages that make the numbers (None for one not installed)."""
    found: dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy", "tandem_keras"):
        try:
            found[name] = __import__(name).__version__
        except Exception:  # not installed, or broken: the record says so
            found[name] = None
    return found


#: environment variables that change TensorFlow's kernels, threads or allocator (and so the
#: speed, or the last bits of the numbers); a record lists those that were set
ENVIRONMENT = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
               "OMP_NUM_THREADS", "TF_CPU_ALLOCATOR_USE_BFC", "TF_XLA_FLAGS", "CUDA_VISIBLE_DEVICES")


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, load average at the time of writing, platform, and the
    variables of :data:`ENVIRONMENT` that were set."""
    cpu, memory = platform.processor() or "unknown", None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
            memory = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "loadavg_1_5_15": load,
            "platform": platform.platform(),
            "environment": {name: os.environ[name] for name in ENVIRONMENT if name in os.environ}}


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars/arrays as Python numbers/lists, tuples as lists, keys as
    strings and non-finite floats as ``None`` (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def make(kind: str, figures: Mapping[str, Any], config: Optional[Mapping[str, Any]] = None,
         command: Optional[str] = None, **provenance: Any) -> dict:
    """A record of ``kind`` with ``figures`` and ``config``, stamped with the command line
    (default: this process's), commit, versions, machine and the current UTC date.
    ``provenance`` overrides stamped fields (``commit=None, converted_from=...`` for an
    old result whose provenance is unknown)."""
    if not kind or not isinstance(kind, str):
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    sha, dirty = commit()
    record = {
        "schema": SCHEMA, "kind": kind,
        "command": command if command is not None else " ".join(
            ["python", "-m", _main_module(), *sys.argv[1:]]),
        "config": dict(config or {}), "commit": sha, "dirty": dirty, "versions": versions(),
        "machine": machine(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": dict(figures)}
    unknown = set(provenance) - set(FIELDS) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"unknown record fields: {', '.join(sorted(unknown))}")
    record.update(provenance)
    return jsonable(record)


def _main_module() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None and spec.name else os.path.basename(sys.argv[0])


def check(record: Mapping[str, Any]) -> None:
    """Raises ``ValueError`` naming the first missing or malformed field."""
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise ValueError(f"record of kind {record.get('kind')!r} lacks {', '.join(missing)}")
    if record["schema"] != SCHEMA:
        raise ValueError(f"record schema must be {SCHEMA!r}, got {record['schema']!r}")
    for field in ("config", "versions", "machine", "figures"):
        if not isinstance(record[field], Mapping):
            raise ValueError(f"record field {field!r} must be an object")


def append(record: Mapping[str, Any], path: str = RECORDS) -> None:
    """Appends ``record`` (checked) as one line of ``path``."""
    check(record)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=False, allow_nan=False) + "\n")


def write(kind: str, figures: Mapping[str, Any], config: Optional[Mapping[str, Any]] = None,
          path: str = RECORDS, **provenance: Any) -> dict:
    """:func:`make` then :func:`append`; returns the record."""
    record = make(kind, figures, config, **provenance)
    append(record, path)
    return record


def read(path: Optional[str] = None) -> list[dict]:
    """Every record of ``path`` (default :data:`RECORDS`), in the order written."""
    path = path or RECORDS
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def select(records: Iterable[Mapping[str, Any]], kind: str, **config: Any) -> list[dict]:
    """The records of ``kind`` whose config has every ``config`` item, oldest first."""
    return [dict(r) for r in records if r["kind"] == kind
            and all(r["config"].get(k) == v for k, v in config.items())]


def latest_each(records: Iterable[Mapping[str, Any]], kind: str,
                key: Callable[[dict], Hashable]) -> dict:
    """``{key(r): the latest record r of kind with that key}``, keys in the order they first
    appear. The latest: the largest ``date_utc``, of equal dates the one written last."""
    found: dict = {}
    for i, r in enumerate(select(records, kind)):
        k = key(r)
        if k not in found or (r["date_utc"], i) >= found[k][0]:
            found[k] = ((r["date_utc"], i), r)
    return {k: r for k, (_, r) in found.items()}


def latest(records: Iterable[Mapping[str, Any]], kind: str, converted_from: Optional[str] = None,
           **config: Any) -> dict:
    """The latest record of ``kind`` whose config has every ``config`` item (and, if given,
    converted from that file), as in :func:`latest_each`. ``LookupError`` if there is none."""
    found = latest_each((r for r in select(records, kind, **config)
                         if converted_from is None or r.get("converted_from") == converted_from),
                        kind, key=lambda r: None)
    if not found:
        raise LookupError(f"no {kind} record with {converted_from or config}")
    return found[None]


def cite(record: Mapping[str, Any]) -> str:
    """``kind, date, commit`` of a record, for a table's caption."""
    sha = record.get("commit")
    where = f"commit {sha[:10]}{' (dirty)' if record.get('dirty') else ''}" if sha else (
        f"commit unknown, converted from {record.get('converted_from', '?')}")
    return f"`{record['kind']}`, {record['date_utc']}, {where}"


def pct(fraction: float, digits: int = 2) -> str:
    """A fraction as a percentage: ``pct(0.5684) == '56.84%'``."""
    return f"{100 * fraction:.{digits}f}%"


def markdown(rows: Sequence[Any], columns: Optional[Sequence[str]] = None) -> str:
    """``rows`` (dicts of column -> cell text, or lists of cells with ``columns``) as a
    Markdown table made by pandas / tabulate (the ``bench`` extra); a missing cell is blank.
    Cells are text, shown as given (numbers are formatted by the table makers).

    Example:
      >>> print(markdown([{"T": "4", "error": "56.84%"}, {"T": "10"}]))
      | T   | error   |
      |-----|---------|
      | 4   | 56.84%  |
      | 10  |         |
    """
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=columns).astype(object).fillna("").map(str)
    return frame.to_markdown(index=False, tablefmt="github", disable_numparse=True)

