"""The wheel holds every program and module of the checkout, one version, the console scripts.

Builds the wheel from a copy of the checkout (``pip wheel --no-deps``, setuptools and wheel of
this environment) and compares its contents with the source tree. Installing it into a fresh
environment and running the console scripts is ``.ci/wheel_check.sh`` (CI, after make test).
"""
import ast
import configparser
import email
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests._train_helpers import ROOT

PACKAGES = ("tandem_keras", "models", "train", "eval", "bench")
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                ".pytest_cache", "runs", "demo_out", "tests", "docs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, work / "src", ignore=IGNORE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(work / "dist"), str(work / "src")],
                   check=True, capture_output=True, text=True)
    (path,) = (work / "dist").glob("tandem_keras-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def _source_files(suffixes):
    found = set()
    for package in PACKAGES:
        for root, dirs, files in os.walk(os.path.join(ROOT, package)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            if "__init__.py" not in files:
                continue  # not a package (e.g. bench/figures): not part of the wheel
            found.update(os.path.relpath(os.path.join(root, f), ROOT).replace(os.sep, "/")
                         for f in files if f.endswith(suffixes))
    return found


def test_every_module_and_program_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for package in PACKAGES:  # train/ once lacked __init__.py and was left out
        assert f"{package}/__init__.py" in names, package
    assert {"train/__main__.py", "eval/__main__.py"} <= names  # python -m train / eval
    modules = _source_files((".py",))
    assert {"train/__main__.py", "train/data.py", "eval/__main__.py",
            "bench/reproduce_cifar10.py", "tandem_keras/layers/__init__.py"} <= modules
    assert modules <= names, sorted(modules - names)
    assert "train/README.md" in names  # package data


def test_one_version_and_the_declared_requirements(wheel):
    import tandem_keras
    from tandem_keras import _version

    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(wheel.read(metadata_name))
    assert metadata["Version"] == _version.__version__ == tandem_keras.__version__
    requires = [r.split(";")[0].strip() for r in metadata.get_all("Requires-Dist")]
    assert "importlib_resources" in requires  # TFDS's builders need it (etils), undeclared
    assert {"tensorflow-datasets>=4.9", "absl-py"} <= set(requires)


def test_console_scripts_are_the_programs_entry_points(wheel):
    (entry_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_name).decode())
    scripts = dict(parser["console_scripts"])
    assert scripts["tandem-train"] == "train.__main__:console_main"
    assert scripts["tandem-eval"] == "eval.__main__:console_main"
    for target in scripts.values():  # a top-level function of the installed module
        module, function = target.split(":")
        tree = ast.parse(wheel.read(module.replace(".", "/") + ".py"))
        assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
