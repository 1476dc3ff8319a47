"""Directories written aside and then renamed into place, and the manifest that checks them.

:func:`written_aside` gives a new hidden directory beside the target (same file system) to
write a whole export into; only when everything is written does it take the target's
place, by renaming. Until then the earlier target is untouched: a failure (a full disk, an
exception) or SIGINT deletes the new directory, and a SIGTERM or SIGKILL leaves it beside
the target, where the next :func:`written_aside` for that target deletes it. Replacing an
existing target takes two renames (the old one aside, the new one in); SIGINT and SIGTERM
are held back between them, and a target left missing by a SIGKILL between them is
restored from the renamed one by the next call.

Only what was written this way is ever replaced: a target that exists must be an empty
directory, or hold exactly the files its manifest lists (``manifest_file``, a JSON file inside
it whose ``"files"`` names every other file) and that manifest. A target holding anything else
(a user's ``notes.txt`` or ``data/`` beside an earlier export, or another directory altogether)
is refused with ``FileExistsError`` before anything is written, and checked again just before
the rename: nothing that was not written here is deleted (:func:`replacement_problem`).

:func:`manifest` records the size of every file of a directory; :func:`manifest_problem`
says which file is missing or has another size (an export written before exports were
atomic, or damaged since).

Paths with a scheme (``gs://...``) are written in place: renaming is not atomic there.

Example:
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "export")
    >>> with written_aside(target, manifest_file="manifest.json") as new:
    ...     with open(os.path.join(new, "a.txt"), "w") as f:
    ...         _ = f.write("abc")
    ...     files = manifest(new)
    ...     with open(os.path.join(new, "manifest.json"), "w") as f:
    ...         json.dump({"files": files}, f)
    >>> files, manifest_problem(target, files), replacement_problem(target, "manifest.json")
    ({'a.txt': 3}, None, None)
    >>> open(os.path.join(target, "notes.txt"), "w").close()
    >>> replacement_problem(target, "manifest.json")
    'holds files that were not written there by an export (notes.txt)'
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import tempfile
import threading
from typing import Iterator, Mapping, Optional, Set

_WRITING, _OLD = "writing", "old"


def _sibling(target: str, kind: str, pid: Optional[int] = None) -> str:
    parent, name = os.path.split(os.path.abspath(target))
    return os.path.join(parent, f".{name}.{kind}-{'*' if pid is None else pid}")


def _pid_alive(path: str) -> bool:
    try:
        pid = int(os.path.basename(path).rsplit("-", 1)[1].split("_")[0])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(target: str) -> None:
    """Restores a target lost between the two renames; deletes what dead writers left."""
    for old in glob.glob(_sibling(target, _OLD)):
        if _pid_alive(old):
            continue
        if not os.path.exists(target):
            os.rename(old, target)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for new in glob.glob(_sibling(target, _WRITING)):
        if not _pid_alive(new):
            shutil.rmtree(new, ignore_errors=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (main thread; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _owned(target: str, manifest_file: Optional[str]) -> Set[str]:
    """The files (relative, ``/``-separated) that ``target``'s manifest says are its own."""
    if manifest_file is None:
        return set()
    try:
        with open(os.path.join(target, *manifest_file.split("/")), encoding="utf-8") as f:
            files = json.load(f).get("files")
    except (OSError, ValueError, AttributeError):
        return set()
    return {*files, manifest_file} if isinstance(files, dict) else set()


def replacement_problem(target: str, manifest_file: Optional[str] = None) -> Optional[str]:
    """Why :func:`written_aside` must not replace ``target`` (None: it may). It may replace
    a missing target, an empty directory, or a directory whose every file and folder is
    listed by its own manifest (the JSON ``manifest_file`` inside it, ``"files"``)."""
    if "://" in target or not os.path.lexists(target):
        return None
    if os.path.islink(target) or not os.path.isdir(target):
        return "exists and is not a directory"
    owned = _owned(target, manifest_file)
    folders = {"/".join(name.split("/")[:i]) for name in owned for i in range(1, name.count("/") + 1)}
    foreign = []
    for root, dirs, files in os.walk(target):
        relative = os.path.relpath(root, target).replace(os.sep, "/")
        prefix = "" if relative == "." else relative + "/"
        kept = []
        for name in sorted(dirs):  # a foreign folder is named, not searched
            link = os.path.islink(os.path.join(root, name))
            if link or prefix + name not in folders:
                foreign.append(prefix + name + "/")
            else:
                kept.append(name)
        dirs[:] = kept
        foreign += [prefix + name for name in sorted(files) if prefix + name not in owned]
    if not foreign:
        return None
    shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
    return f"holds files that were not written there by an export ({shown})"


def _replace(new: str, target: str, manifest_file: Optional[str]) -> None:
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    problem = replacement_problem(target, manifest_file)  # anything added while writing
    if problem:
        raise FileExistsError(f"{target!r} {problem}: not replaced")
    old = _sibling(target, _OLD, os.getpid())
    with _signals_held():
        os.rename(target, old)
        os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def written_aside(target: str, manifest_file: Optional[str] = None) -> Iterator[str]:
    """Yields a new empty directory to write ``target``'s new content into; when the block
    ends without an exception it replaces ``target`` (see the module docstring).

    Raises:
      FileExistsError: ``target`` holds what may not be replaced (:func:`replacement_problem`:
        anything but an empty directory or the files its ``manifest_file`` lists), before the
        block runs or, if it appeared meanwhile, after (the new content is then deleted).
    """
    problem = replacement_problem(target, manifest_file)
    if problem:
        raise FileExistsError(f"{target!r} {problem}: not replaced")
    if "://" in target:
        os.makedirs(target, exist_ok=True)  # tf.io.gfile paths: no atomic rename
        yield target
        return
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    _recover(target)
    name = os.path.basename(os.path.abspath(target))
    new = tempfile.mkdtemp(prefix=f".{name}.{_WRITING}-{os.getpid()}_", dir=parent)
    os.chmod(new, 0o777 & ~_umask())  # mkdtemp's 0700, not what a plain mkdir gives
    try:
        yield new
        _replace(new, target, manifest_file)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise


def manifest(directory: str) -> dict[str, int]:
    """``{relative path ('/'-separated): size in bytes}`` of every file under ``directory``."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            files[os.path.relpath(path, directory).replace(os.sep, "/")] = os.path.getsize(path)
    return dict(sorted(files.items()))


def manifest_problem(directory: str, files: Mapping[str, int]) -> Optional[str]:
    """None if every file of ``files`` is in ``directory`` with its size, else what is not."""
    for name, size in files.items():
        path = os.path.join(directory, *name.split("/"))
        if not os.path.isfile(path):
            return f"{name} is missing"
        actual = os.path.getsize(path)
        if actual != size:
            return f"{name} has {actual:,} bytes, not the {size:,} written"
    return None
