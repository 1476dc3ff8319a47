#!/usr/bin/env bash
# CI step: the project works as a normal (non-editable) install, beside other projects.
#
# Builds the wheel from a copy of the checkout, installs it with the `digits` and `nir` extras into a
# fresh virtual environment outside the checkout -- after another project whose top-level
# packages are named `models` and `train` -- and from another directory runs
#   tandem-train (digits, 1 epoch, T=2) -> tandem-eval (its export, test split)
#   -> tandem-export-nir (the same export to a NIR file; the `nir` extra)
#   python -m tandem_keras_programs train / eval / bench.reproduce_cifar10 --help
# failing on any error, on a module imported from the checkout instead of the install, on a
# file of the wheel at the top of site-packages other than tandem_keras/ and
# tandem_keras_programs/, on the other project's packages overwritten or shadowed, or on an
# eval report without its top-1 error line.
#
# Environment: PYTHON (interpreter of the fresh venv, default python3), WHEEL_CHECK_SRC
# (source tree to package, default this checkout). Takes about 1.5 min with a warm pip
# cache, most of it installing TensorFlow.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$(cd "${WHEEL_CHECK_SRC:-$ROOT}" && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export TF_CPP_MIN_LOG_LEVEL=2
start=$SECONDS

fail() { echo "wheel_check: FAILED: $*" >&2; exit 1; }

# 1. Wheel from a clean copy (no build/, dist/, *.egg-info or caches of the checkout).
"$PYTHON" - "$SRC" "$WORK/src" <<'PYEOF'
import shutil, sys
shutil.copytree(sys.argv[1], sys.argv[2], ignore=shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    "runs", "demo_out"))
PYEOF
"$PYTHON" -m pip wheel --quiet --no-deps -w "$WORK/dist" "$WORK/src"
wheel="$(ls "$WORK"/dist/tandem_keras-*.whl)"
rm -rf "$WORK/src"
echo "wheel_check: built $(basename "$wheel") ($((SECONDS - start)) s)"

# 2. Another project with top-level `models` and `train` packages (names many projects use).
mkdir -p "$WORK/other/models" "$WORK/other/train"
echo 'WHO = "another project"' > "$WORK/other/models/__init__.py"
echo 'WHO = "another project"' > "$WORK/other/train/__init__.py"
printf '%s\n' 'from setuptools import setup' \
    'setup(name="another-project", version="1.0", packages=["models", "train"])' \
    > "$WORK/other/setup.py"
"$PYTHON" -m pip wheel --quiet --no-deps -w "$WORK/dist" "$WORK/other"
other="$(ls "$WORK"/dist/another_project-*.whl)"

# 3. A fresh venv (no system site-packages): the other project, then the wheel and its dependencies.
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$other"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel[digits,nir]" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
echo "wheel_check: installed beside another project's models and train ($((SECONDS - start)) s)"

# 4. Everything from another directory, so nothing is imported from the checkout.
mkdir "$WORK/run" && cd "$WORK/run"
bin="$WORK/venv/bin"
check_other_project() {
    "$bin/python" -c 'import models, train; assert models.WHO == train.WHO == "another project"' \
        || fail "the other project's models/train packages are overwritten or shadowed ($1)"
}
check_other_project "after installing the wheel"
"$bin/python" - "$WORK/venv" <<'PYEOF' || fail "the wheel's files are not where they belong"
import importlib.metadata, os, sys
import tandem_keras, tandem_keras_programs
for module in (tandem_keras, tandem_keras_programs):
    assert module.__file__.startswith(sys.argv[1]), f"{module.__name__} imported from {module.__file__}"
programs = tandem_keras_programs.programs_dir()
assert programs == os.path.dirname(tandem_keras_programs.__file__), programs
for name in ("models", "common/datasets.py", "train/run.py", "eval/report.py", "eval/export_nir.py", "bench"):
    assert os.path.exists(os.path.join(programs, name)), f"{name} is not in {programs}"
top = {str(f).split("/")[0] for f in importlib.metadata.files("tandem_keras")
       if not str(f).startswith("..")}  # ../../../bin: the console scripts
extra = {t for t in top if not t.endswith(".dist-info")} - {"tandem_keras", "tandem_keras_programs"}
assert not extra, f"the wheel installs {sorted(extra)} at the top of site-packages"
assert tandem_keras.__version__, "no tandem_keras.__version__"
print(f"wheel_check: tandem_keras {tandem_keras.__version__}, the programs in {programs}")
PYEOF

# absl's --help exits 1 after printing the flags: check what it printed instead.
while read -r expected cmd; do
    out="$($bin/$cmd --help 2>&1)" || true
    if grep -q "Traceback" <<<"$out" || ! grep -q -- "$expected" <<<"$out"; then
        echo "$out" >&2
        fail "$cmd --help does not list $expected"
    fi
done <<'LIST'
--model_dir tandem-train
--model_dir python -m tandem_keras_programs train
--saved_model tandem-eval
--saved_model python -m tandem_keras_programs eval
--output tandem-export-nir
--budget python -m tandem_keras_programs bench.reproduce_cifar10
LIST

"$bin/tandem-train" --model=digits --dataset=digits --epochs=1 --time_steps=2 --batch_size=64 \
    --model_dir="$WORK/run/model" --export_dir="$WORK/run/export" > train.log 2>&1 \
    || { tail -20 train.log >&2; fail "tandem-train"; }
"$bin/tandem-eval" --saved_model="$WORK/run/export" --dataset=digits --split=test \
    --output_json="$WORK/run/eval.json" > eval.log 2>&1 \
    || { tail -20 eval.log >&2; fail "tandem-eval"; }
grep -E "top-1 error: [0-9.]+%" eval.log || { cat eval.log >&2; fail "no top-1 error line in tandem-eval's output"; }
test -s "$WORK/run/eval.json" || fail "tandem-eval wrote no --output_json"
"$bin/tandem-export-nir" --saved_model="$WORK/run/export" --output="$WORK/run/model.nir" \
    > nir.log 2>&1 || { tail -20 nir.log >&2; fail "tandem-export-nir"; }
test -s "$WORK/run/model.nir" || fail "tandem-export-nir wrote no NIR file"
check_other_project "after running the programs"
echo "wheel_check: OK ($((SECONDS - start)) s)"
