# keras_s2v: `make demo` sets everything up and runs the main job; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR ?= demo
# Test processes: the suite is mostly single-threaded TF graph building, so 2 workers use both CI cores.
# Whole files go to one worker (--dist loadfile): a module's trained fixtures are built once.
TEST_WORKERS ?= 2
# Real media for tests and benchmarks (never needed at run time).
export KERAS_S2V_MEDIA ?= $(abspath ../shared/media)

.PHONY: install system-deps demo test bench clean

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
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

bench: install
	$(PY) benchmarks/prepare_bench.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
