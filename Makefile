# Two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv, install torch==2.13.0 first (the CPU build; an unpinned torch
# would pull the CUDA packages), then fewpick with its test extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fewpick-installed
DEMO   := demo_output

.PHONY: demo test install clean help

help:
	@echo "make demo   - install into .venv and run the demo on simulated micrographs (writes $(DEMO)/)"
	@echo "make test   - install into .venv and run the test suite"
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

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache build src/*.egg-info
