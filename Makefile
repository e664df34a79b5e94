# Two commands do all the set-up: `make lab` (students) and `make test` (instructors, CI).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
# Extra pip arguments for torch, e.g. a CPU-only package index on a Linux laptop.
TORCH_PIP_ARGS ?=
KERNEL := fine-tuning-course
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install lab test unit notebooks-test notebooks release clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "CUDA GPU found: installing the CUDA build of torch"; \
	  $(PY) -m pip install --quiet "torch>=2.4"; \
	else \
	  echo "No CUDA GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
	  $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS); \
	fi
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Fine-tuning course (.venv)" >/dev/null
	@touch $@

lab: install
	$(VENV)/bin/jupyter lab lessons/ $(if $(filter 0,$(shell id -u)),--allow-root)  # containers often run as root

# Whole suite: unit tests, lessons and solutions with --nbval, exercises with --nbval-lax.
test: install
	time $(PY) -m pytest -q --durations=0 --durations-min=1.0 \
	  tests \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg lessons solutions \
	  -o addopts="-p no:cacheprovider"
	$(PY) -m pytest -q --durations=0 --durations-min=1.0 \
	  --nbval-lax --nbval-current-env exercises

unit: install
	$(PY) -m pytest -q --durations=10 tests

# Regenerate every committed notebook from sources/ and execute it in place.
notebooks: install
	$(PY) tools/build_notebooks.py --all
	$(VENV)/bin/course release

release: install
	$(VENV)/bin/course release

clean:
	rm -rf $(VENV) build *.egg-info
