"""The wheel holds every program and module of the checkout, one version, the console scripts.

Builds the wheel from a copy of the checkout (``pip wheel --no-deps``, setuptools and wheel of
this environment) and compares its contents with the source tree: the library at the top,
the programs (``models``, ``common``, ``train``, ``eval``, ``bench``) inside ``tandem_keras_programs``
and nothing else at the top of site-packages. Installing it into a fresh environment beside
another project's ``models`` package and running the console scripts is
``.ci/wheel_check.sh`` (CI, after make test).
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

PROGRAMS = ("models", "common", "train", "eval", "bench")
PACKAGES = ("tandem_keras", "tandem_keras_programs", *PROGRAMS)
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


def _installed_name(path):
    """Where a checkout file lands in the wheel: the programs under tandem_keras_programs/."""
    return f"tandem_keras_programs/{path}" if path.split("/")[0] in PROGRAMS else path


def test_every_module_and_program_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for package in PACKAGES:  # train/ once lacked __init__.py and was left out
        assert _installed_name(f"{package}/__init__.py") in names, package
    # python -m train / eval, installed as tandem-train / tandem-eval
    assert {"tandem_keras_programs/train/__main__.py", "tandem_keras_programs/eval/__main__.py"} <= names
    modules = _source_files((".py",))
    assert {"train/__main__.py", "common/datasets.py", "eval/__main__.py",
            "bench/reproduce_cifar10.py", "tandem_keras/layers/__init__.py",
            "tandem_keras_programs/__main__.py"} <= modules
    installed = {_installed_name(m) for m in modules}
    assert installed <= names, sorted(installed - names)
    assert "tandem_keras_programs/train/README.md" in names  # package data


def test_nothing_but_the_two_packages_at_the_top_of_site_packages(wheel):
    """Other projects have their own ``models``, ``train``, ``eval``, ``bench``."""
    top = {name.split("/")[0] for name in wheel.namelist() if "/" in name}
    assert top == {"tandem_keras", "tandem_keras_programs", "tandem_keras-0.1.0.dist-info"}
    (top_level,) = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["tandem_keras", "tandem_keras_programs"]


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
    assert scripts == {"tandem-train": "tandem_keras_programs:train",
                       "tandem-eval": "tandem_keras_programs:evaluate",
                       "tandem-export-nir": "tandem_keras_programs:export_nir"}
    for target in scripts.values():  # a top-level function of the installed module
        module, function = target.split(":")
        tree = ast.parse(wheel.read(module.replace(".", "/") + "/__init__.py"))
        assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def _run_programs(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "tandem_keras_programs", *args], cwd=cwd,
                          env=dict(env, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=300)


def test_programs_runner_beside_another_models_package(tmp_path):
    """``python -m tandem_keras_programs MODULE`` = ``python -m MODULE`` with the programs
    found first, in its own process, even with another ``models`` on the path; a module
    outside the programs is refused in one line."""
    other = tmp_path / "other"
    (other / "models").mkdir(parents=True)
    (other / "models" / "__init__.py").write_text("raise ImportError('the other models package')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "tandem_keras_programs", "train", "--helpshort"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=dict(env, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([str(other), ROOT])))
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "--model_dir" in result.stdout + result.stderr  # train.flags imported our models
    result = _run_programs("os.path", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("tandem_keras_programs: error: 'os.path' is not a module "
                                     "of the programs (models, common, train, eval, bench)")
