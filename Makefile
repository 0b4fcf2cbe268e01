# cifar-nb. The whole set-up is two commands: `make book` and `make test`.
# Each creates .venv and installs the pinned environment on first use (about 2 minutes), then
# takes seconds. Other targets: `make preview`, `make reproduce`, `make bench` (see README.md).
SHELL := /bin/bash
PY := .venv/bin/python
# Reinstall when the pins change: the stamp's name carries pyproject.toml's hash.
STAMP := .venv/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# Where the datasets live. A layout with the shared data folder beside the clone is found by default;
# anywhere else, set CIFAR_NB_DATA (see README.md).
CIFAR_NB_DATA ?= $(firstword $(wildcard $(abspath ../shared/data)))
export CIFAR_NB_DATA
DEVICE ?= cuda

.PHONY: venv test book preview reproduce bench browser clean-book

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cifar-nb)" >/dev/null
	@rm -f .venv/.installed-*; touch $@

# Headless Chromium for the browser check of the built book (Debian's package).
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser check"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: venv browser
	$(PY) -m pytest -q

book: venv
	.venv/bin/jupyter-book build --warningiserror --keep-going .

# Execute every notebook with papermill on CPU at tiny budgets, writing the executed copies into book/.
preview: venv
	$(PY) -m cifar_nb execute --preview --device cpu

# Execute every notebook at the reports' full budgets (GPU), reusing finished run artifacts.
reproduce: venv
	$(PY) -m cifar_nb execute --device $(DEVICE)

bench: venv
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/gen_speed.py
	$(PY) benchmarks/queue_throughput.py

clean-book:
	rm -rf _build
