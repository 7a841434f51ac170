# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: venv demo test lab bench release grade clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $$(grep -E '^(torch|torchvision)==' requirements.txt)
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps -r requirements-nodeps.txt
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(PY) -m maskgit_lab demo

# MASKGIT_LAB_FAST=1 shortens the notebooks' training cells; pytest runs tests/ and, with
# nbval, every notebook in solutions/ top to bottom.
test: venv
	MASKGIT_LAB_FAST=1 $(PY) -m pytest

release: venv
	$(PY) -m autograder release

# Grade the example submissions (autograder/examples/) into artifacts/grades/: grades.csv and
# feedback/<student>/ (HTML + summary.md), then checks each example got what the table expects.
# Fast mode keeps a one-notebook example to 1-2 minutes; --timeout is only a safety net here.
GRADE_OPTS ?= -j 2 --timeout 600 --cell-timeout 60
grade: venv
	$(PY) -m autograder examples
	MASKGIT_LAB_FAST=1 $(PY) -m autograder grade autograder/examples --out artifacts/grades/grades.csv $(GRADE_OPTS)
	$(PY) -m autograder examples --verify artifacts/grades/grades.csv

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

bench: venv
	$(PY) -m maskgit_lab bench

clean-venv:
	rm -rf $(VENV)
