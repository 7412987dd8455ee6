# Two entry points matter: `make run` (the main job) and `make test` (everything CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup sidecar run doctor test lint typecheck unit engine wheel-test bench clean eval eval-baseline chromium

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $@

# Builds daprd, placement and scheduler from the pinned github.com/dapr/dapr module
# into ~/.cache/fte/dapr/<version>-<hash>/ (skipped when already built).
sidecar: setup
	$(BIN)/python -m fte sidecar build

# The main job: a cited report on the sample corpus. With no OPENAI_API_KEY or
# OPENAI_BASE_URL it uses the built-in offline model; set them to use a real LLM.
QUERY ?= How do durable workflows recover from crashes without redoing work?
run: sidecar
	$(BIN)/python -m fte research "$(QUERY)" --corpus examples/corpus --out reports

doctor: sidecar
	$(BIN)/python -m fte doctor

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: lint typecheck sidecar chromium
	$(BIN)/pytest
	.ci/wheel_test
	$(EVAL)

# The browser tests of `fte ui` (tests/browser/) drive Debian's Chromium through Playwright's
# Python API; Playwright's own browser download is never used. Installed once, as root or
# through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# The offline evaluation suites (README, "Evaluation"), gated: fails when a metric of the
# scorecard falls below evals/baseline.json by more than its stated tolerance.
EVAL_OUT ?= reports/eval
EVAL = $(BIN)/python -m fte eval --compare evals/baseline.json --out $(EVAL_OUT)
eval: sidecar
	$(EVAL)

# After an intended change: the current scorecard becomes the committed baseline.
eval-baseline: sidecar
	$(BIN)/python -m fte eval --out $(EVAL_OUT)
	cp $(EVAL_OUT)/scorecard.json evals/baseline.json

# The built wheel installed into a venv outside the checkout runs the main job (offline).
wheel-test: sidecar
	.ci/wheel_test

# perf.py measures every figure of README "Performance" and writes benchmarks/results.json;
# the README's table is regenerated from it (beside the numbers from before issue 11).
bench: sidecar
	$(BIN)/python benchmarks/perf.py
	$(BIN)/python benchmarks/readme_table.py --before benchmarks/results-before.json --write README.md
	$(BIN)/python benchmarks/runtime_start.py
	$(BIN)/python benchmarks/search_engines.py
	$(BIN)/python benchmarks/hybrid_retrieval.py

clean:
	rm -rf $(VENV) .fte .pytest_cache .mypy_cache .ruff_cache
