# The two commands of the README: `make demo` and `make test`.
# Both create the virtual environment and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out
PYTEST_ARGS ?=
# Keep TensorFlow's C++ start-up chatter out of the output.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv demo test test-slow wheel-check bench clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,plots,digits]'
	touch $(STAMP)

venv: $(STAMP)

# NIR export tests: nir always; the CPU torch + snnTorch of the 'nir-test' extra for the
# third-party check, unless torch==2.13.0 would come as a CUDA build here (several GB):
# then tests/tandem_keras/test_nir_snntorch.py skips, saying so.
NIR_STAMP := $(VENV)/.nir
$(NIR_STAMP): $(STAMP) setup.py
	$(PY) -m pip install --quiet -e '.[nir]'
	if $(PY) -m pip install --quiet --dry-run --report - 'torch==2.13.0' | grep -q '"nvidia-'; then \
		echo "torch==2.13.0 would be a CUDA build here: not installing it (snnTorch check skips)"; \
	else $(PY) -m pip install --quiet -e '.[nir-test]'; fi
	touch $@

# `make test` (what CI runs; under 6 minutes on 2 idle cores) deselects the tests marked slow;
# `make test-slow` runs just those.
test: $(STAMP) $(NIR_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q --doctest-modules -m "not slow" $(PYTEST_ARGS) tests tandem_keras tandem_keras_programs models common train eval

test-slow: $(STAMP) $(NIR_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q -m slow $(PYTEST_ARGS) tests

# The wheel installed into a fresh venv outside the checkout, console scripts run (CI runs it).
wheel-check:
	.ci/wheel_check.sh

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(PY) -m train --model=digits --dataset=digits --epochs=8 --batch_size=64 \
		--time_steps=4 --model_dir=$(DEMO_DIR)/model --export_dir=$(DEMO_DIR)/export
	$(PY) -m eval --saved_model=$(DEMO_DIR)/export --dataset=digits --split=test \
		--output_json=$(DEMO_DIR)/eval.json --plots_dir=$(DEMO_DIR)/plots

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
