# keras_s2v: `make demo` sets everything up and runs the main job; `make test` runs the suite; `make lint` checks
# the Python's formatting and lint (ruff, configured in pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR ?= demo
# Test processes: the suite is mostly single-threaded TF graph building, so 2 workers use both CI cores.
# Whole files go to one worker (--dist loadfile): a module's trained fixtures are built once. They go in
# collection order (--no-loadscope-reorder), which tests/conftest.py starts with the slowest files.
TEST_WORKERS ?= 2
# Real media for tests and benchmarks (never needed at run time).
export KERAS_S2V_MEDIA ?= $(abspath ../shared/media)

# Where `make pretrain` keeps the prepared corpus and the training runs (each step resumes when re-run).
PRETRAIN_DIR ?= runs/pretrain

.PHONY: install system-deps demo test lint bench pretrain-data pretrain heldout clean

install: $(STAMP)

system-deps:
	@if ! command -v ffmpeg >/dev/null || ! command -v espeak-ng >/dev/null || ! ldconfig -p | grep -q libespeak-ng.so.1; then \
		echo "installing ffmpeg and espeak-ng (Debian packages)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq ffmpeg espeak-ng libespeak-ng1; \
	fi

$(STAMP): requirements.txt | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	$(PY) -m keras_s2v.data.face.models
	touch $(STAMP)

demo: install
	$(PY) -m keras_s2v.demo --out $(DEMO_DIR)

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20 tests

# `$(VENV)/bin/ruff format .` and `$(VENV)/bin/ruff check --fix .` fix most of what this reports.
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# Reproduces the presets from ../shared/media (corpus/ and clips/, split by keras_s2v/pretrained/real_split.tsv):
# hours on 2 CPU cores; re-running resumes every step. Then `python -m keras_s2v.pretrained save` ships a run:
# s2v_real from s2v_real_long (phase 1 continued from s2v_real), each preset's card.md gives its commands.
pretrain-data: install
	$(PY) -m keras_s2v.prepare --input $(KERAS_S2V_MEDIA)/corpus --input $(KERAS_S2V_MEDIA)/clips \
		--out $(PRETRAIN_DIR)/real --split_table keras_s2v/pretrained/real_split.tsv --workers 2

pretrain: pretrain-data
	$(PY) -m keras_s2v.train --data $(PRETRAIN_DIR)/real --workdir $(PRETRAIN_DIR)/syncnet_real --experiment syncnet_real
	$(PY) -m keras_s2v.train --data $(PRETRAIN_DIR)/real --workdir $(PRETRAIN_DIR)/s2v_real --experiment s2v_real
	$(PY) -m keras_s2v.train --data $(PRETRAIN_DIR)/real --workdir $(PRETRAIN_DIR)/s2v_real_long --experiment s2v_real \
		--override model.init_from=$(PRETRAIN_DIR)/s2v_real --override train.learning_rate=1.5e-4 \
		--override train.epochs=80 --override train.early_stopping_patience=13
	$(PY) -m keras_s2v.train --data $(PRETRAIN_DIR)/real --workdir $(PRETRAIN_DIR)/s2v_mobile_real --experiment s2v_mobile_real

# The shipped preset on the 13 held-out test speakers, with the baselines: report.md and contact_sheet.png (real
# against generated frames; kept out of the repository, as the clips' rights stay with their owners). ~15 min.
HELDOUT_MODEL ?= s2v_real
heldout: pretrain-data
	$(PY) -m keras_s2v.evaluate --model $(HELDOUT_MODEL) --data $(PRETRAIN_DIR)/real --split test \
		--sync_model syncnet_real --acd_stride 10 --out $(PRETRAIN_DIR)/heldout_$(HELDOUT_MODEL) --overwrite

bench: install
	$(PY) benchmarks/prepare_bench.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
