"""Preparing a TFDS dataset, and one line saying which files go where when TFDS cannot.

TFDS downloads ``cifar10`` itself; ``imagenet2012`` it can only build from archives the user
downloads (after registering) into TFDS's manual download directory,
``<data_dir>/downloads/manual``. Without them TFDS fails with a multi-line
``AssertionError`` after printing that it starts preparing; :func:`prepare` then returns
one line naming the missing files and the directory instead.

Example:
  >>> import tempfile
  >>> missing_manual_files("imagenet2012", tempfile.mkdtemp())
  ['ILSVRC2012_img_train.tar', 'ILSVRC2012_img_val.tar']
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from typing import Any

from absl import logging

#: TFDS datasets TFDS cannot download: the files of their manual download, and where from.
MANUAL_DOWNLOADS = {
    "imagenet2012": (("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
                     "from https://image-net.org/download-images"),
}


def manual_dir(builder: Any) -> str:
    """TFDS's manual download directory of ``builder`` (default download config)."""
    return os.path.join(str(builder.data_dir_root), "downloads", "manual")


def missing_manual_files(name: str, directory: str) -> list[str]:
    """The files of ``name``'s manual download (``MANUAL_DOWNLOADS``) absent from ``directory``."""
    files = MANUAL_DOWNLOADS.get(name, ((), ""))[0]
    return [f for f in files if not os.path.isfile(os.path.join(directory, f))]


def manual_download_message(name: str, directory: str) -> str | None:
    """One line saying which files to put where, or None if none of them is missing."""
    missing = missing_manual_files(name, directory)
    if not missing:
        return None
    files, source = MANUAL_DOWNLOADS[name]
    return (f"TFDS {name!r} is not prepared and needs a manual download: put "
            f"{' and '.join(files)} ({source}) in {directory}/ (missing: {', '.join(missing)})")


def _check_writable(directory: str) -> None:
    """Raises the ``OSError`` (naming ``directory``) that TFDS would meet preparing a dataset
    there, before it says it starts."""
    if "://" in directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as error:
        raise OSError(error.errno, error.strerror, directory) from None


def prepare(builder: Any, name: str) -> str | None:
    """``builder.download_and_prepare()``; returns the one-line problem when a manual download
    is missing and preparation fails, None when the dataset is ready. Other errors propagate
    (an ``OSError`` naming the directory, before TFDS starts, when it cannot write there).

    With the manual files missing TFDS cannot prepare the dataset unless it already is (or
    is mocked, ``tfds.testing.mock_data``), so that attempt runs without TFDS's start-up
    messages; with them present it runs as usual.
    """
    if not os.path.isfile(os.path.join(str(builder.data_dir), "dataset_info.json")):  # not prepared
        _check_writable(str(builder.data_dir_root))
    directory = manual_dir(builder)
    if not missing_manual_files(name, directory):
        builder.download_and_prepare()
        return None
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            builder.download_and_prepare()
    except Exception:
        message = manual_download_message(name, directory)
        if message:
            return message
        raise
    finally:
        logging.set_verbosity(verbosity)
    return None
