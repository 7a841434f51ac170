# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-browser browser-deps slurm-deps sandbox-deps lab bench release grade clean-venv

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

# MASKGIT_LAB_FAST=1 shortens the notebooks' training cells; pytest runs tests/ (the browser
# tests included) and, with nbval, every notebook in solutions/ top to bottom.
test: venv browser-deps slurm-deps sandbox-deps
	MASKGIT_LAB_FAST=1 $(PY) -m pytest

# The browser tests alone: a real JupyterLab driven in headless Chromium (tests/browser).
test-browser: venv browser-deps
	MASKGIT_LAB_FAST=1 $(PY) -m pytest tests/browser -m browser

# What the browser tests need besides .venv: Debian's Chromium with its matching driver (apt, only
# when missing and running as root) and the widget renderer for static HTML exports (npm). Each
# missing piece makes its tests skip with one line saying what to install; it never fails the build.
HTML_MANAGER := @jupyter-widgets/html-manager@1.0.15
WIDGETS_JS := $(VENV)/share/maskgit-lab/html-manager
browser-deps: $(WIDGETS_JS)/embed.js
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium chromium-driver || { apt-get update -q && apt-get install -y -q chromium chromium-driver; } \
	      || echo "could not install chromium and chromium-driver: the browser tests will skip"; \
	  else echo "browser tests will skip: install chromium and chromium-driver (apt-get, as root)"; fi; \
	fi

# The SLURM test (tests/test_slurm.py) starts a real single-node slurmctld + slurmd: it needs slurm-wlm
# and munge (apt, only when missing and running as root); without them it skips with one line.
slurm-deps:
	@if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q slurm-wlm munge || { apt-get update -q && apt-get install -y -q slurm-wlm munge; } \
	      || echo "could not install slurm-wlm and munge: the SLURM test will skip"; \
	  else echo "the SLURM test will skip: install slurm-wlm and munge (apt-get, as root)"; fi; \
	fi

# The grader's worker runs in a bubblewrap sandbox (autograder/sandbox.py): bubblewrap from apt, only
# when missing and running as root; without it grading says so in one line and uses the write guard alone.
sandbox-deps:
	@if ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q bubblewrap || { apt-get update -q && apt-get install -y -q bubblewrap; } \
	      || echo "could not install bubblewrap: grading falls back to the write guard, the sandbox test will skip"; \
	  else echo "no sandbox for the grader: install bubblewrap (apt-get, as root)"; fi; \
	fi

$(WIDGETS_JS)/embed.js:
	@if command -v npm >/dev/null; then \
	  mkdir -p $(WIDGETS_JS) && cd $(WIDGETS_JS) && npm pack --silent $(HTML_MANAGER) >/dev/null && \
	  tar -xzf jupyter-widgets-html-manager-*.tgz --strip-components=2 package/dist/embed.js && rm jupyter-widgets-html-manager-*.tgz \
	  || echo "could not fetch $(HTML_MANAGER) with npm: the static-export browser test will skip"; \
	else echo "npm not found: the static-export browser test will skip"; fi

release: venv
	$(PY) -m autograder release

# Grade the example submissions (autograder/examples/) into artifacts/grades/: grades.csv and
# feedback/<student>/ (HTML + summary.md), then checks each example got what the table expects.
# Fast mode keeps a one-notebook example to 1-2 minutes. The limits are the defaults (autograder/README.md,
# "Choosing --cell-timeout"): shorter ones cost correct notebooks their checks on a loaded machine.
GRADE_OPTS ?= -j 2
grade: venv sandbox-deps
	$(PY) -m autograder examples
	MASKGIT_LAB_FAST=1 $(PY) -m autograder grade autograder/examples --out artifacts/grades/grades.csv $(GRADE_OPTS)
	$(PY) -m autograder examples --verify artifacts/grades/grades.csv

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

bench: venv
	$(PY) -m maskgit_lab bench
	$(PY) -m autograder bench

clean-venv:
	rm -rf $(VENV)
