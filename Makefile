# alexnet-keras: every user-facing command. `make` alone lists them.
CONFIG ?= configs/demo.yaml
RUN ?= $(basename $(notdir $(CONFIG)))
ARGS ?=
PORT ?= 6006
SERVICE_PORT ?= 5050
WORKERS ?= 1
IMAGES ?=
PICTURES ?=
WEIGHTS ?= imagenet
PYTHON ?= python3
PEERS ?=
# AS is also make's built-in name of the assembler (as): empty unless given.
ifeq ($(origin AS),default)
AS :=
endif
# make image: the tag to build (deploy/'s manifests run registry.example.com/alexnet-keras:latest) and TensorFlow's
# image to build on (empty: the Dockerfile's, tensorflow/tensorflow:2.21.0-gpu; tensorflow/tensorflow:2.21.0 for CPUs).
IMAGE ?= registry.example.com/alexnet-keras:latest
BASE_IMAGE ?=

VENV := .venv
PY := $(VENV)/bin/python
RUN_ARGS := --config $(CONFIG) --run $(RUN) $(ARGS)
# The oldest Python the code runs on: pyproject.toml's requires-python (">=3.11"), which make lint checks.
PYTHON_FLOOR := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"$$/\1/p' pyproject.toml)
# TensorFlow's C++ logs are fatal-only by default (python -m alexnet sets TF_CPP_MIN_LOG_LEVEL=3 unless
# it is set): `make train TF_CPP_MIN_LOG_LEVEL=0` shows them all.
ifdef TF_CPP_MIN_LOG_LEVEL
export TF_CPP_MIN_LOG_LEVEL
endif

.DEFAULT_GOAL := help
.PHONY: help install train lr-find claims compare data-service test test-fast lint summary data digits prepare eval predict export report import tensorboard bench bench-gpu first-run publish docs image

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: CONFIG=$(CONFIG) RUN=$(RUN) ARGS=\"section.key=value ...\" PORT=$(PORT) IMAGES=\"a.jpg b.png\" SERVICE_PORT=$(SERVICE_PORT) WORKERS=$(WORKERS) WEIGHTS=$(WEIGHTS)"

# The environment is rebuilt whenever requirements.txt or pyproject.toml is newer than the last install.
# The package itself is installed editable, so src/ changes need no reinstall and nothing edits sys.path.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

install: $(VENV)/.installed ## create .venv and install the pinned packages and this one (every target does it first)

train: $(VENV)/.installed data ## make the data if needed, train CONFIG into logs/RUN/, export a SavedModel
	$(PY) -m alexnet train $(RUN_ARGS)

lr-find: $(VENV)/.installed data ## learning-rate range test on CONFIG's data: loss vs rate in logs/RUN/lr_find.png, a suggested rate
	$(PY) -m alexnet lr-find $(RUN_ARGS)

claims: $(VENV)/.installed ## the paper's claims re-run (CONFIG defaults to configs/claims.yaml): logs/claims/report.md
	$(PY) -m alexnet claims $(if $(filter command line,$(origin CONFIG)),--config $(CONFIG),--config configs/claims.yaml) $(ARGS)

compare: $(VENV)/.installed ## AlexNet beside LeNet-5 and ResNet (CONFIG defaults to configs/compare.yaml): logs/compare/report.md
	$(PY) -m alexnet compare $(if $(filter command line,$(origin CONFIG)),--config $(CONFIG),--config configs/compare.yaml) $(ARGS)

data-service: $(VENV)/.installed ## a tf.data service dispatcher on SERVICE_PORT and WORKERS workers here (train with ARGS="data.service=grpc://localhost:5050")
	$(PY) -m alexnet data-service --port $(SERVICE_PORT) --workers $(WORKERS)

test: lint ## lint, then run the whole test suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest tests --durations=15

test-fast: lint ## the tests not marked slow (no subprocess CLIs, trainings or full-size builds): under 2 minutes
	$(PY) -m pytest tests -m "not slow" --durations=10

# Then vermin: nothing in src/ or tests/ needs a Python newer than requires-python (the lines that do are named),
# and the code does need that one (else the floor is not the oldest Python it runs on: lower it, and ruff's
# target-version with it).
lint: $(VENV)/.installed ## ruff (configured in pyproject.toml) over src/ and tests/, then vermin: the Python floor is requires-python's
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/vermin --no-tips --eval-annotations --violations --target=$(PYTHON_FLOOR)- src tests
	$(VENV)/bin/vermin --no-tips --eval-annotations --quiet --target=$(PYTHON_FLOOR) src tests || { echo "vermin: the \
	code runs on a Python older than $(PYTHON_FLOOR): lower requires-python and ruff's target-version"; exit 1; }

summary: $(VENV)/.installed ## print the Keras summary of the CONFIG's model
	$(PY) -m alexnet summary $(RUN_ARGS)

data: $(VENV)/.installed ## generate the offline demo data set into data/demo/ (no-op for other sources)
	$(PY) -m alexnet data $(RUN_ARGS)

digits: $(VENV)/.installed ## write the real-image check set (scanned digits as photos) into configs/folder.yaml's data.dir
	$(PY) -m alexnet digits --config configs/folder.yaml $(ARGS)

prepare: $(VENV)/.installed data ## write CONFIG's data as sharded TFRecords of 256x256 JPEGs (data.colour_stats=true for RGB stats)
	$(PY) -m alexnet prepare $(RUN_ARGS)

eval: $(VENV)/.installed ## the paper's evaluation of logs/RUN: centre and 10-crop errors (Table 2), Figure 4, projector; logs/RUN/eval.json
	$(PY) -m alexnet eval --run $(RUN) $(ARGS)

predict: $(VENV)/.installed ## top-5 classes for IMAGES with logs/RUN's exported model
	$(PY) -m alexnet predict --run $(RUN) $(IMAGES)

export: $(VENV)/.installed ## export logs/RUN's best checkpoint as a SavedModel to logs/RUN/export/
	$(PY) -m alexnet export --run $(RUN)

report: $(VENV)/.installed ## one self-contained HTML page of logs/RUN (RUN=claims: the study) to share; PICTURES=dir also writes its PNGs
	$(PY) -m alexnet report --run $(RUN) $(if $(PICTURES),--pictures $(PICTURES))

import: $(VENV)/.installed ## WEIGHTS=imagenet (torchvision's, downloaded once) or a .pth/.caffemodel file, as the finished run logs/RUN
	$(PY) -m alexnet import --weights $(WEIGHTS) --run $(RUN) $(ARGS)

first-run: $(VENV)/.installed ## time make install and make train in a fresh clone of HEAD; the run lands in logs/RUN/
	$(PY) -m alexnet first-run --run $(RUN)

publish: $(VENV)/.installed ## copy logs/RUN's records (a run, a study, or logs/RUN.json) and pictures into docs/results/AS/
	$(PY) -m alexnet publish --run $(RUN) $(if $(AS),--as $(AS))

docs: $(VENV)/.installed ## regenerate every table of figures in README.md and docs/ (and the pictures) from docs/results/
	$(PY) -m alexnet docs

tensorboard: $(VENV)/.installed ## serve logs/ on PORT
	$(VENV)/bin/tensorboard --logdir logs --port $(PORT) --bind_all

bench: $(VENV)/.installed ## measure step and pipeline throughput; prints a table, writes logs/bench.json (PEERS=torch: beside PyTorch and keras's image_dataset_from_directory)
	$(if $(filter torch,$(PEERS)),$(PY) -m pip install --quiet torch==2.13.0)
	$(PY) -m alexnet bench $(RUN_ARGS) $(foreach peer,$(PEERS),--peers $(peer))

# Only keras and a backend needed: TensorFlow where it is installed, else JAX (or KERAS_BACKEND=jax).
bench-gpu: GPU_PY = $(if $(wildcard $(PY)),$(PY),$(PYTHON))
bench-gpu: ## training step on one GPU (TensorFlow, or JAX: KERAS_BACKEND=jax, the default with only keras + JAX installed)
	PYTHONPATH=src KERAS_BACKEND=$${KERAS_BACKEND:-$$($(GPU_PY) -c 'import importlib.util as u; print("tensorflow" if u.find_spec("tensorflow") else "jax")')} $(GPU_PY) -m alexnet.bench.gpu

# The image deploy/'s manifests run (the Dockerfile: TensorFlow's image of the pinned version, requirements.txt,
# this package; its command is theirs). Then `docker push $(IMAGE)` to the registry the cluster pulls from.
image: ## build the image deploy/'s manifests run (IMAGE=tag; BASE_IMAGE=tensorflow/tensorflow:2.21.0 for CPUs), then docker push it
	docker build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) --tag $(IMAGE) .
