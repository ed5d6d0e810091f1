# One venv for everything. torch comes first (pip would otherwise resolve a multi-GB
# build of its own choosing); sam2 1.1.0 builds against that torch, without CUDA kernels.
# TORCH_INDEX_URL picks the torch build: the default (PyPI) is the CUDA build on Linux;
# `make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu` installs the CPU build
# (no CUDA libraries; the default build brought 3.2 GB of them onto a CPU machine).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.iqa-installed
RECIPE ?= llm_iqa
IMAGES ?= images
OUT ?= results.csv
TORCH_INDEX_URL ?=
TORCH_INDEX := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL),)
# e.g. BENCH_ARGS='--device cuda --json bench.json' on a GPU machine
BENCH_ARGS ?=

.PHONY: setup lock test test-latest run demo bench docs

# Every package comes from requirements.lock (used as pip constraints, so the CPU build of
# torch, `2.14.1+cpu`, satisfies the lock's `torch==2.14.1` too). `make lock` refreshes it.
$(STAMP): pyproject.toml requirements.lock Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c requirements.lock --upgrade pip setuptools wheel
	$(BIN)/pip install -c requirements.lock $(TORCH_INDEX) torch torchvision
	$(BIN)/pip install -c requirements.lock -e '.[all,test,docs]'
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -c requirements.lock --no-build-isolation sam2
	touch $@

setup: $(STAMP)

# Re-resolve the lock to the newest releases the ranges allow (pyproject.toml + requirements.in),
# for CPython 3.11 on x86_64 Linux, the platform CI runs on. Then `make test` and commit it.
lock:
	$(PYTHON) -m pip install -q uv
	$(PYTHON) -m uv pip compile pyproject.toml requirements.in --extra all --extra test --extra docs \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --upgrade -o requirements.lock

# The same suite on the newest releases the package's ranges admit, in a venv of its own: an
# upstream release that breaks the project is found here before a user finds it.
LATEST_VENV ?= .venv-latest
test-latest:
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install --upgrade pip setuptools wheel
	$(LATEST_VENV)/bin/pip install --upgrade $(TORCH_INDEX) torch torchvision
	$(LATEST_VENV)/bin/pip install --upgrade --upgrade-strategy eager -e '.[all,test,docs]'
	SAM2_BUILD_CUDA=0 $(LATEST_VENV)/bin/pip install --upgrade --no-build-isolation sam2
	$(LATEST_VENV)/bin/pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	HF_HUB_OFFLINE=1 $(LATEST_VENV)/bin/python -m pytest -q

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# `iqa check` first: with no weights it prints every missing model and its download command at once
run: setup
	$(BIN)/iqa check $(RECIPE)
	$(BIN)/iqa run --recipe $(RECIPE) $(IMAGES) -o $(OUT)

# tiny random models and generated images: every command in about a minute, no downloads
demo: setup
	$(BIN)/iqa demo

bench: setup
	$(BIN)/python benchmarks/throughput.py $(BENCH_ARGS)

# the documentation site in site/ (tests/test_docs.py builds it with --strict too); offline
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
