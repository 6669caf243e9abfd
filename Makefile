# The two commands of the README:  `make run`  and  `make test`.  Both set up what is missing first.
# Stamps record what is built; a stamp is newer than its inputs only after the step succeeded, so a
# failed or interrupted step is simply redone on the next call, and a second `make setup` does nothing.
SHELL := /bin/bash
PYTHON ?= python3.11
APP_STAMP := .venv/.bench_app_ready
ENGINE_STAMP := .venv-engine/.bench_app_ready
MODEL_STAMP := models/SmolLM2-135M-Instruct/.bench_app_ready
ARGS ?=

.PHONY: setup run test test-fast lint format dry-run clean-envs browser slurm sandbox
setup: $(APP_STAMP) $(ENGINE_STAMP) $(MODEL_STAMP) sandbox

$(APP_STAMP): requirements/app.txt setup.cfg scripts/setup.sh
	PYTHON=$(PYTHON) scripts/setup.sh app
	touch $@

$(ENGINE_STAMP): requirements/engine.txt scripts/setup.sh scripts/vllm_cpu_launcher.py
	PYTHON=$(PYTHON) scripts/setup.sh engine
	touch $@

$(MODEL_STAMP): $(ENGINE_STAMP) scripts/prepare_model.py
	scripts/setup.sh model
	touch $@

# The main job: the embedded default (real vLLM-CPU + real AISBench on the sample datasets).
run: setup
	.venv/bin/python -m bench_app $(ARGS)

dry-run: $(APP_STAMP)
	.venv/bin/python -m bench_app execution.dry_run=true $(ARGS)

# Lint first (seconds): a style or import error fails fast, before the minutes of real runs.
# On both cores, one test file per worker at a time (a file's module fixtures, e.g. the SLURM cluster, stay
# on one worker); the 25 slowest tests are printed.
test: setup lint browser slurm
	.venv/bin/python -m pytest -n 2 --dist loadfile --durations=25 $(ARGS)

# The inner loop: every test that starts no real server (no e2e, no session server).
test-fast: setup lint
	.venv/bin/python -m pytest -n 2 --dist loadfile -m "not e2e and not server" --durations=10 $(ARGS)

# The report tests open the HTML reports in a real headless Chromium (a no-op once installed).
browser:
	scripts/setup.sh browser

# Code datasets run the model's programs in bubblewrap (a no-op once installed).
sandbox:
	scripts/setup.sh sandbox

# The SLURM tests start a real single-node cluster (scripts/slurm_local.sh) from Debian's packages.
slurm:
	scripts/setup.sh slurm

# ruff (style, imports) and import-linter (setup.cfg [importlinter]: the layers, every import points down).
lint: $(APP_STAMP)
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_docs.py  # the documents' links resolve

format: $(APP_STAMP)
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

clean-envs:
	rm -rf .venv .venv-engine models
