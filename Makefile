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

.PHONY: venv demo test bench clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,plots,digits]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS) tests

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(PY) -m train --model=digits --dataset=digits --epochs=8 --batch_size=64 \
		--time_steps=4 --model_dir=$(DEMO_DIR)/model --export_dir=$(DEMO_DIR)/export
	$(PY) -m eval --saved_model=$(DEMO_DIR)/export --dataset=digits --split=test \
		--output_json=$(DEMO_DIR)/eval.json --plots_dir=$(DEMO_DIR)/plots

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
