#!/usr/bin/env bash
# CI step: the project works as a normal (non-editable) install.
#
# Builds the wheel from a copy of the checkout, installs it with the `digits` and `nir` extras into a
# fresh virtual environment outside the checkout, and from another directory runs
#   tandem-train (digits, 1 epoch, T=2) -> tandem-eval (its export, test split)
#   -> tandem-export-nir (the same export to a NIR file; the `nir` extra)
#   python -m train / python -m eval / python -m bench.reproduce_cifar10 --help
# failing on any error, on a module imported from the checkout instead of the install,
# or on an eval report without its top-1 error line.
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
"$PYTHON" - "$SRC" "$WORK/src" <<'EOF'
import shutil, sys
shutil.copytree(sys.argv[1], sys.argv[2], ignore=shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    "runs", "demo_out"))
EOF
"$PYTHON" -m pip wheel --quiet --no-deps -w "$WORK/dist" "$WORK/src"
wheel="$(ls "$WORK"/dist/tandem_keras-*.whl)"
rm -rf "$WORK/src"
echo "wheel_check: built $(basename "$wheel") ($((SECONDS - start)) s)"

# 2. A fresh venv (no system site-packages), the wheel and its dependencies.
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel[digits,nir]" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
echo "wheel_check: installed into a fresh venv ($((SECONDS - start)) s)"

# 3. Everything from another directory, so nothing is imported from the checkout.
mkdir "$WORK/run" && cd "$WORK/run"
bin="$WORK/venv/bin"
"$bin/python" - "$WORK/venv" <<'EOF' || fail "modules not imported from the installed wheel"
import importlib, sys
import tandem_keras
for name in ("tandem_keras", "models", "train", "train.data", "eval", "eval.report", "bench"):
    path = importlib.import_module(name).__file__
    assert path.startswith(sys.argv[1]), f"{name} imported from {path}"
assert tandem_keras.__version__, "no tandem_keras.__version__"
print(f"wheel_check: tandem_keras {tandem_keras.__version__}, all programs from the wheel")
EOF

# absl's --help exits 1 after printing the flags: check what it printed instead.
while read -r expected cmd; do
    out="$($bin/$cmd --help 2>&1)" || true
    if grep -q "Traceback" <<<"$out" || ! grep -q -- "$expected" <<<"$out"; then
        echo "$out" >&2
        fail "$cmd --help does not list $expected"
    fi
done <<'LIST'
--model_dir tandem-train
--model_dir python -m train
--saved_model tandem-eval
--saved_model python -m eval
--budget python -m bench.reproduce_cifar10
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
echo "wheel_check: OK ($((SECONDS - start)) s)"
