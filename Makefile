# litassist — two commands for a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORPUS ?= ../shared/corpus/hf-daily-papers
QUESTION ?= Which papers reduce catastrophic forgetting with LoRA?
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install browser-deps lint typecheck eval bench bench-concurrency fuzz clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the browser test (Debian packages; never a downloaded browser).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  ($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "warning: could not install chromium; the browser test will be skipped"; \
	fi

demo: install
	$(BIN)/litassist ingest $(CORPUS)
	$(BIN)/litassist stats
	$(BIN)/litassist ask "$(QUESTION)"

test: install browser-deps
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check assistant ingest evals ui tests
	$(BIN)/mypy

eval: install
	$(BIN)/litassist eval --questions ../shared/evals/dev.jsonl --json artifacts/eval.json --md artifacts/eval.md --plot artifacts/eval.png

bench: install
	$(BIN)/python benchmarks/bench_ingest.py $(CORPUS)
	$(BIN)/python benchmarks/bench_ask.py

# 8 concurrent Gradio users, LLM (2 s loopback stub) and extractive backends: prints a table.
bench-concurrency: install
	$(BIN)/python benchmarks/bench_concurrency.py

# The property-based parser/ingest fuzz suite, long profile (>= 10,000 examples per format).
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -p no:randomly tests/test_fuzz.py

clean:
	rm -rf $(VENV) .cache artifacts .pytest_cache .mypy_cache .ruff_cache *.egg-info
