# Two commands for a fresh machine of this kind (Debian 12, root):
#   make test   every test (lint, sanity, unit, integration, molecule scenarios)
#   make demo   the main job on the embedded default: a local container fleet + local S3
# Each installs what it needs: host packages, a venv from the pinned lock, the bed.

SHELL := /bin/bash
# The venv is keyed by the lock's hash and kept outside the checkout, so a fresh clone on
# the same machine (CI) reuses it; a changed lock gets a new one.
REQ_HASH := $(shell sha256sum requirements/requirements.txt | cut -c1-16)
VENV ?= $(HOME)/.cache/neuron-core-dump/venv-$(REQ_HASH)
REQ_STAMP := $(VENV)/.complete
export CONTAINERS_CONF := $(CURDIR)/tests/bed/containers.conf
export PATH := $(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test demo deps host-packages venv bed lint sanity artefact unit molecule bench clean

test: deps
	tests/run-all.sh

demo: deps
	demo/run.sh

deps: host-packages venv

host-packages:
	@tests/bed/install-host-packages.sh

venv: $(REQ_STAMP)

$(REQ_STAMP):
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/requirements.txt
	touch $@

# Individual stages, for developers (make test runs all of them).
lint: deps
	tests/run-all.sh lint
sanity: deps
	tests/run-all.sh sanity
artefact: deps
	tests/run-all.sh artefact
# The developer's inner loop: only the venv, no bed, no containers (seconds).
unit: venv
	tests/run-all.sh unit
molecule: deps
	tests/run-all.sh molecule

# Performance is measured, not asserted in tests: numbers go to docs/benchmarks.md.
bench: deps
	python3 bench/run.py

clean:
	-python3 tests/bed/bedctl.py down
	rm -rf .bed tests/output
