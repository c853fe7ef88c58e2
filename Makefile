# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv, install torch==2.13.0 first (the CPU build; an unpinned torch
# would pull the CUDA packages), then fewpick with its test extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fewpick-installed
DEMO   := demo_output

SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.PHONY: demo test lint install browser clean help

help:
	@echo "make demo   - install into .venv and run the demo on simulated micrographs (writes $(DEMO)/)"
	@echo "make test   - install into .venv, check the code (make lint) and run the test suite"
	@echo "make lint   - ruff and mypy over the code (settings in pyproject.toml)"
	@echo "make clean  - remove .venv, $(DEMO)/ and caches"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh $(DEMO)

# Debian's Chromium for the browser test of the exploration page (Playwright drives it); where it
# cannot be installed the test says so and skips.
browser:
	@command -v chromium >/dev/null 2>&1 || ( $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null ) || \
	  echo "Chromium could not be installed: the browser test will be skipped"

# ruff (style, imports, likely bugs) and mypy (types), both configured in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy

test: $(STAMP) browser lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache build src/*.egg-info
