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

.PHONY: setup test run demo bench

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	$(BIN)/pip install $(TORCH_INDEX) torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[all,test]'
	SAM2_BUILD_CUDA=0 $(BIN)/pip install --no-build-isolation sam2==1.1.0
	touch $@

setup: $(STAMP)

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
