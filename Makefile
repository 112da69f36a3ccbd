# Two commands on a fresh machine with python3 and make:
#   make repro   # install everything from uv.lock, then run the whole pipeline on real MNIST
#   make test    # install everything from uv.lock, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.installed

# The stages' `python` and the `dvc` below are the virtual environment's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install repro test lint clean verify-repro

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(STAMP)

repro: install
	dvc repro

# `dvc repro -f` twice on the real data; prints each output's sha256 from both runs.
verify-repro: install
	python benchmarks/verify_repro.py

test: install
	pytest

lint: install
	ruff check src stages tests benchmarks
	ruff format --check src stages tests benchmarks

clean:
	rm -rf $(VENV) $(TOOLS) data dvc_plots
