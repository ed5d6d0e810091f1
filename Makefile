# One venv for everything. torch comes first (pip would otherwise resolve a multi-GB
# build of its own choosing); sam2 1.1.0 builds against that torch, without CUDA kernels.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.iqa-installed
RECIPE ?= recipes/llm_iqa.yaml
IMAGES ?= images
OUT ?= results.csv
# e.g. BENCH_ARGS='--device cuda --json bench.json' on a GPU machine
BENCH_ARGS ?=

.PHONY: setup test run bench

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[all,test]'
	SAM2_BUILD_CUDA=0 $(BIN)/pip install --no-build-isolation sam2==1.1.0
	touch $@

setup: $(STAMP)

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

run: setup
	$(BIN)/iqa run --recipe $(RECIPE) $(IMAGES) -o $(OUT)

bench: setup
	$(BIN)/python benchmarks/throughput.py $(BENCH_ARGS)
