# Two commands for a fresh machine of this kind (Debian 12, root):
#   make test   every test (lint, sanity, unit, integration, molecule scenarios)
#   make demo   the main job on the embedded default: a local container fleet + local S3
# Each installs what it needs: host packages, a venv from the pinned lock, the bed.

SHELL := /bin/bash
VENV := .venv
REQ_STAMP := $(VENV)/.req-$(shell sha256sum requirements/requirements.txt | cut -c1-16)
export CONTAINERS_CONF := $(CURDIR)/tests/bed/containers.conf
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test demo deps host-packages venv bed lint sanity unit molecule bench clean

test: deps
	tests/run-all.sh

demo: deps
	@echo "make demo: not built yet (the fleet demo lands with the dump_env/playbooks issue)."

deps: host-packages venv

host-packages:
	@tests/bed/install-host-packages.sh

venv: $(REQ_STAMP)

$(REQ_STAMP): requirements/requirements.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements/requirements.txt
	touch $@

# Individual stages, for developers (make test runs all of them).
lint: deps
	tests/run-all.sh lint
sanity: deps
	tests/run-all.sh sanity
unit: deps
	tests/run-all.sh unit
molecule: deps
	tests/run-all.sh molecule

clean:
	-python3 tests/bed/bedctl.py down
	rm -rf .bed $(VENV) tests/output
