"""Results records, and the docs' tables made from them.

A record is one JSON object a line of ``bench/results/records.jsonl`` (:data:`RECORDS`), appended,
never rewritten: ``schema``, ``kind``, ``command``, ``config``, ``commit`` and ``dirty`` (None when
unknown, never guessed: ``converted_from`` names the older file it came from), ``versions``,
``machine``, ``date_utc``, ``figures``; :func:`read` reads them with pandas. A Markdown table
between ``<!-- table:NAME -->`` and ``<!-- /table -->`` is made by ``bench.tables.TABLES[NAME]``
(records -> ``(markdown, records used)``) and cites the records used (:func:`render`).

Example:
  >>> import tempfile, os
  >>> path = os.path.join(tempfile.mkdtemp(), "records.jsonl")
  >>> r = write("example", {"images_per_s": 9.4}, config={"T": 10}, path=path)
  >>> [r["schema"], of(read(path), "example")[0]["figures"]]
  ['tandem_keras.record/1', {'images_per_s': 9.4}]
  >>> render("a\\n<!-- table:x -->\\nold\\n<!-- /table -->", {"x": lambda rs: ("new", [])}, [])
  'a\\n<!-- table:x -->\\nnew\\n<!-- /table -->'
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
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
OUTPUTS = ("bench/results", "bench/figures", "bench/models")  # what runs write: not "dirty" code
#: environment variables that change TensorFlow's kernels, threads or allocator
ENVIRONMENT = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
               "OMP_NUM_THREADS", "TF_CPU_ALLOCATOR_USE_BFC", "TF_XLA_FLAGS", "CUDA_VISIBLE_DEVICES")
DOCS = ("bench/RESULTS.md", "bench/README_reproduce.md", "README.md")
MARKER = re.compile(r"(<!-- table:([\w.-]+) -->\n)(.*?)(<!-- /table -->)", re.S)
Table = Callable[[Sequence[dict]], "tuple[str, list[dict]]"]


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def commit() -> tuple[Optional[str], Optional[bool]]:
    """``(HEAD's sha, dirty)``: dirty if tracked files other than :data:`OUTPUTS` differ from
    HEAD; ``(None, None)`` outside a git checkout."""
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){path}" for path in OUTPUTS))
    return sha.strip(), (None if status is None else bool(status.strip()))


def provenance() -> dict[str, Any]:
    """The packages' versions; the machine, its load and the variables of :data:`ENVIRONMENT`."""
    versions: dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy", "tandem_keras"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # not installed, or broken: the record says so
            versions[name] = None
    cpu, memory = platform.processor() or "unknown", None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            memory = round(next(int(line.split()[1]) for line in f if line.startswith("MemTotal")) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"versions": versions, "machine": {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "loadavg_1_5_15": load,
        "platform": platform.platform(),
        "environment": {name: os.environ[name] for name in ENVIRONMENT if name in os.environ}}}


def jsonable(value: Any) -> Any:
    """``value`` with NumPy values as Python ones, tuples as lists and NaN/inf as None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write(kind: str, figures: Mapping[str, Any], config: Optional[Mapping[str, Any]] = None,
          path: Optional[str] = RECORDS, command: Optional[str] = None, **stamped: Any) -> dict:
    """The record of ``kind`` stamped with the command (default: this process's), commit,
    versions, machine and date (``stamped`` overrides them), appended to ``path`` (if any)."""
    if not kind or not isinstance(kind, str):
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    unknown = set(stamped) - set(FIELDS) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"unknown record fields: {', '.join(sorted(unknown))}")
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    sha, dirty = commit()
    record = jsonable({
        "schema": SCHEMA, "kind": kind,
        "command": command or " ".join(["python", "-m", main.name if main else sys.argv[0], *sys.argv[1:]]),
        "config": dict(config or {}), "commit": sha, "dirty": dirty, **provenance(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "figures": dict(figures),
        **stamped})
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")
    return record


def read(path: Optional[str] = None):
    """Every record of ``path`` (default :data:`RECORDS`) as a pandas DataFrame, one row per
    line in the order written."""
    import pandas as pd

    path = path or RECORDS
    if not os.path.exists(path) or not os.path.getsize(path):
        return pd.DataFrame(columns=FIELDS)
    return pd.read_json(path, lines=True, dtype=False, precise_float=True)


def of(frame, kind: str, **config: Any) -> list[dict]:
    """The records of ``kind`` in ``frame`` (:func:`read`'s, or a list), oldest first, whose config
    holds every item of ``config``."""
    if isinstance(frame, list):
        rows = [r for r in frame if r["kind"] == kind]
    else:
        rows = frame[frame["kind"] == kind].to_dict("records") if len(frame) else []
    found = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]
    found = [{k: v for k, v in r.items() if k not in OPTIONAL or v is not None} for r in found]
    return [r for r in found if all(r["config"].get(k) == v for k, v in config.items())]


def latest_each(records: Iterable[dict], key: Callable[[dict], Hashable]) -> dict:
    """``{key(r): the latest r}`` (largest ``date_utc``, of equal dates the one written last),
    keys in the order they first appear."""
    found: dict = {}
    for i, r in enumerate(records):
        k = key(r)
        if k not in found or (r["date_utc"], i) >= found[k][0]:
            found[k] = ((r["date_utc"], i), r)
    return {k: r for k, (_, r) in found.items()}


def latest(records: Sequence[dict]) -> dict:
    """The latest of ``records`` (:func:`latest_each`); ``LookupError`` if there is none."""
    if not records:
        raise LookupError("no record of that kind and config")
    return latest_each(records, lambda r: None)[None]


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
    """``rows`` (dicts of column -> cell, or lists of cells with ``columns``) as a GitHub
    Markdown table (pandas and tabulate, the ``bench`` extra); a missing cell is blank.

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


def render(text: str, tables: Mapping[str, Table], frame) -> str:
    """``text`` with every marked table regenerated from ``frame`` (an unknown NAME is a
    ``KeyError``)."""
    def replace(match: re.Match) -> str:
        name = match.group(2)
        if name not in tables:
            raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(tables))}")
        body, used = tables[name](frame)
        cited = "; ".join(cite(r) for r in used)
        return match.group(1) + body + ("\n\nRecord: " + cited if cited else "") + "\n" + match.group(4)
    return MARKER.sub(replace, text)


def regenerate(tables: Mapping[str, Table], check_only: bool) -> int:
    """Regenerates the tables of :data:`DOCS` (``check_only``: names the stale ones, exit 1)."""
    frame, stale = read(), []
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            text = f.read()
        new = render(text, tables, frame)
        if new != text:
            stale.append(doc)
            if not check_only:
                with open(os.path.join(ROOT, doc), "w", encoding="utf-8") as f:
                    f.write(new)
    verb = "out of date" if check_only else "regenerated"
    print(f"{verb}: {', '.join(stale)}" if stale else "every table is up to date")
    return 1 if check_only and stale else 0
