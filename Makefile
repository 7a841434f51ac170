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
	# jsonschema's optional IRI format checker builds a grammar on import: 1 s in every process that reads a
	# notebook (each nbgrader call, each judge). Nothing here validates IRIs (autograder/README, Timings).
	$(PIP) uninstall --quiet --yes rfc3987-syntax
	touch $(STAMP)

demo: venv
	$(PY) -m maskgit_lab demo

# MASKGIT_LAB_FAST=1 shortens the notebooks' training cells; pytest runs tests/ (the browser
# tests included) and, with nbval, every notebook in solutions/ top to bottom.
test: venv browser-deps slurm-deps sandbox-deps
	MASKGIT_LAB_FAST=1 $(PY) -m pytest --durations=15

# The browser tests alone: a real JupyterLab driven in headless Chromium (tests/browser).
test-browser: venv browser-deps
	MASKGIT_LAB_FAST=1 $(PY) -m pytest tests/browser -m browser

# $(call apt_install,COMMANDS,PACKAGES,WHAT SKIPS): when one of COMMANDS is missing, install PACKAGES with apt (as
# root only); when that cannot be done, one line says what skips. It never fails the build. (No commas in the
# arguments: make would split them.)
define apt_install
@if ! { $(foreach c,$(1),command -v $(c) >/dev/null &&) true; }; then \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get install -y -q $(2) || { apt-get update -q && apt-get install -y -q $(2); } \
      || echo "could not install $(2): $(3)"; \
  else echo "$(3): install $(2) (apt-get as root)"; fi; \
fi
endef

# What the browser tests need besides .venv: Debian's Chromium with its matching driver and the widget
# renderer for static HTML exports (npm). Each missing piece makes its tests skip with one line.
HTML_MANAGER := @jupyter-widgets/html-manager@1.0.15
WIDGETS_JS := $(VENV)/share/maskgit-lab/html-manager
browser-deps: $(WIDGETS_JS)/embed.js
	$(call apt_install,chromium chromedriver,chromium chromium-driver,the browser tests will skip)

# The SLURM test (tests/test_slurm.py) starts a real single-node slurmctld + slurmd: it needs slurm-wlm and munge.
slurm-deps:
	$(call apt_install,slurmctld munged,slurm-wlm munge,the SLURM test will skip)

# The grader's worker runs in a bubblewrap sandbox (autograder/student/sandbox.py); without it grading says so in one
# line and uses the write guard alone.
sandbox-deps:
	$(call apt_install,bwrap,bubblewrap,the sandbox test will skip and grading uses the write guard alone)

$(WIDGETS_JS)/embed.js:
	@if command -v npm >/dev/null; then \
	  mkdir -p $(WIDGETS_JS) && cd $(WIDGETS_JS) && npm pack --silent $(HTML_MANAGER) >/dev/null && \
	  tar -xzf jupyter-widgets-html-manager-*.tgz --strip-components=2 package/dist/embed.js && rm jupyter-widgets-html-manager-*.tgz \
	  || echo "could not fetch $(HTML_MANAGER) with npm: the static-export browser test will skip"; \
	else echo "npm not found: the static-export browser test will skip"; fi

release: venv
	$(PY) -m autograder release

# Grade the example submissions (autograder/examples/) into artifacts/grades/: grades.csv,
# misconceptions.md (+ .png) and feedback/<student>/ (HTML + summary.md), then checks each example got
# what the table expects and is listed under its misconception's name.
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
