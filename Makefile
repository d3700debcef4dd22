# mailmesh.imap test harness. `make test` runs everything from a fresh Debian 12
# machine (as root); `make lab` brings up the container lab. See docs/development.md.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := $(CURDIR)/.venv
PY_VERSION  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV_SITE   := $(VENV)/lib/python$(PY_VERSION)/site-packages
VENV_STAMP  := $(VENV)/.requirements-installed
REQUIREMENTS := requirements/controller.txt
BUILD       := $(CURDIR)/.build
IMAGES      ?= debian12 debian13 debian12-arm64
SCENARIO    ?=

export PATH := $(VENV)/bin:$(PATH)
# .build/collections holds mailmesh.imap (a symlink to this repo) and links to the few
# collections it uses from the venv (community.docker, ansible.posix: see
# tests/harness/collection-link.sh); nothing else. The sys.path scan stays off, so the
# hundred other collections of the `ansible` PyPI package stay out of sight: Mitogen
# lists every visible collection whenever a worker runs a collection's module.
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := False
# The roles read facts only from ansible_facts. ansible-core 2.20 deprecates the top-level
# ansible_* copies (gone in 2.24): every run here goes without them, so nothing comes to
# depend on them.
export ANSIBLE_INJECT_FACT_VARS := False
# Mitogen's strategy plugins (mitogen_linear, ...) from the venv. Nothing uses them unless a
# run asks for one: `make lab` (LAB_STRATEGY), the e2e scenario's re-run test and the
# benchmark do.
export ANSIBLE_STRATEGY_PLUGINS := $(VENV_SITE)/ansible_mitogen/plugins/strategy
# The lab's site.yml and smoke check keep one Python per host for the whole run
# (Mitogen) instead of starting one per task: a re-run takes a third of the time.
# LAB_STRATEGY=linear runs stock Ansible; so does `make lab`, with a one-line notice, when
# Mitogen does not load with the venv's ansible-core. Container set-up and tear-down (localhost
# only) run stock Ansible: nothing to gain there, and molecule's own create/destroy
# playbooks, whose async container jobs never report done under Mitogen 0.3.54, stay
# out of its way too.
LAB_STRATEGY ?= mitogen_linear
# Colour for people at a terminal; plain text in CI, whose log is read by machines too.
ifndef CI
export ANSIBLE_FORCE_COLOR := 1
export PY_COLORS := 1
endif

# Only directories that exist: git keeps no empty folder, and pytest fails on a missing path.
PYTEST_PATHS := $(wildcard tests/unit tests/integration tests/molecule)
PYTEST_ARGS  ?=

.PHONY: help venv docker images collection lint sanity newest units integration molecule test lab lab-down clean

help:
	@echo "make test         everything: venv docker images lint sanity newest, then one pytest run"
	@echo "make lab          bring up the container lab and apply the playbooks"
	@echo "make lab-down     remove the lab containers, network and .build/lab"
	@echo "make venv | docker | images | lint | sanity | newest | units | integration"
	@echo "make molecule [SCENARIO=name]   all scenarios through pytest, or one with molecule test"
	@echo "                  (on the newest ansible-core; MOLECULE_CONTROLLER=host: the venv's)"
	@echo "make clean        remove .venv and .build but its dockerd log (Docker images are kept)"

venv: $(VENV_STAMP) collection

# Re-installs only when requirements/controller.txt is newer than the stamp.
$(VENV_STAMP): $(REQUIREMENTS)
	@echo "==> venv: $(VENV) from $(REQUIREMENTS)"
	@if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
	  echo "==> venv: installing python3-venv"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	fi
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $(REQUIREMENTS)
	@touch $@
	@echo "==> venv: $$($(VENV)/bin/ansible --version | sed -n 1p), $$($(VENV)/bin/python -m pip show molecule 2>/dev/null | sed -n 's/^Version: /molecule /p')"

collection:
	@bash tests/harness/collection-link.sh $(VENV_SITE)

docker:
	@bash tests/harness/docker-engine.sh

images: docker
	@for image in $(IMAGES); do bash tests/harness/build-image.sh "$$image" || exit $$?; done

# ANSIBLE_HOME under .build: ansible-lint puts $$ANSIBLE_HOME/collections first in the
# collections path; ~/.ansible/collections may hold a stale copy of this collection.
# ansible-lint manages the collections path itself and warns when the sys.path scan is off.
lint: venv
	@echo "==> lint: ansible-lint (profile production)"
	@mkdir -p $(BUILD)/ansible-lint-home
	@env -u ANSIBLE_COLLECTIONS_SCAN_SYS_PATH ANSIBLE_HOME=$(BUILD)/ansible-lint-home ansible-lint

# ansible-test runs on the built tarball installed under .build/sanity, as a user would get it.
sanity: venv
	@bash tests/harness/sanity.sh

units: venv
	@pytest $(PYTEST_ARGS) $(wildcard tests/unit)

integration: venv
	@pytest $(PYTEST_ARGS) $(wildcard tests/integration)

# The newest ansible-core release (requirements/controller-newest.txt) needs Python >= 3.12:
# it runs in a Debian 13 container (tests/harness/controller.sh). Here: ansible-test sanity
# and units on the installed tarball, as `make sanity` does with the venv's ansible-core.
newest: venv images
	@bash tests/harness/controller.sh bash tests/harness/sanity.sh

# The scenarios run on the newest ansible-core; MOLECULE_CONTROLLER=host runs them with
# the venv's (the one `make lab` uses).
molecule: venv images
ifeq ($(SCENARIO),)
	@pytest $(PYTEST_ARGS) tests/molecule
else ifeq ($(MOLECULE_CONTROLLER),host)
	@molecule test -s $(SCENARIO)
else
	@bash tests/harness/controller.sh molecule test -s $(SCENARIO)
endif

# venv, docker and images one after another (each stops the run at its failure); then
# lint, sanity and newest at once: each alone keeps about one of the two cores busy
# (docs/development.md, "CI time"). Their output goes to .build/log/test-<phase>.log and
# is printed whole when all three are done, in that order, with each one's time; a
# failure is reported there and make test exits non-zero after pytest. Then ONE pytest
# run, whose summary ends the output.
CHECK_PHASES := lint sanity newest

test:
	@failed=""; \
	for phase in venv docker images; do \
	  start=$$(date +%s); \
	  if $(MAKE) --no-print-directory $$phase; then \
	    echo "==> $$phase: done in $$(( $$(date +%s) - start ))s"; \
	  else \
	    echo "==> $$phase: FAILED after $$(( $$(date +%s) - start ))s"; exit 1; \
	  fi; \
	done; \
	logs=$(BUILD)/log; mkdir -p "$$logs"; rm -f "$$logs"/test-*.rc; started=$$(date +%s); \
	echo "==> $(CHECK_PHASES): at once (output: $$logs/test-<phase>.log, shown when all are done)"; \
	for phase in $(CHECK_PHASES); do \
	  ( start=$$(date +%s); \
	    if $(MAKE) --no-print-directory $$phase > "$$logs/test-$$phase.log" 2>&1; then rc=0; else rc=1; fi; \
	    echo "$$rc $$(( $$(date +%s) - start ))" > "$$logs/test-$$phase.rc" ) & \
	done; \
	wait; \
	for phase in $(CHECK_PHASES); do \
	  cat "$$logs/test-$$phase.log"; \
	  read -r rc seconds < "$$logs/test-$$phase.rc" || { rc=1; seconds="?"; }; \
	  if [ "$$rc" = 0 ]; then echo "==> $$phase: done in $${seconds}s"; \
	  else echo "==> $$phase: FAILED after $${seconds}s"; failed="$$failed $$phase"; fi; \
	done; \
	echo "==> $(CHECK_PHASES): done in $$(( $$(date +%s) - started ))s"; \
	if [ -n "$$failed" ]; then echo "==> failed phases:$$failed (make test exits non-zero after pytest)"; fi; \
	echo "==> pytest: $(PYTEST_PATHS)"; \
	pytest --durations=15 $(PYTEST_ARGS) $(PYTEST_PATHS) || exit $$?; \
	[ -z "$$failed" ]

# `make lab`: the container lab, from a fresh clone as root on Debian 12, in phases
# (each announced, timed, and named if it fails, with the hosts Ansible's recap marks
# failed or unreachable). A second run on a running lab changes nothing. Each phase's
# output is also kept in .build/lab/log/.
lab:
	@set -o pipefail; started=$$(date +%s); logdir=$(BUILD)/lab/log; mkdir -p "$$logdir"; \
	phase() { \
	  n=$$1; what=$$2; shift 2; start=$$(date +%s); log="$$logdir/phase-$$n.log"; \
	  echo "==> lab: phase $$n/5: $$what"; \
	  if "$$@" 2>&1 | tee "$$log"; then \
	    echo "==> lab: phase $$n/5: $$what: done in $$(( $$(date +%s) - start ))s"; \
	  else \
	    hosts=$$(sed 's/\x1b\[[0-9;]*m//g' "$$log" | awk '/ : ok=/ && (/failed=[1-9]/ || /unreachable=[1-9]/) { print $$1 }' | sort -u | xargs); \
	    echo "==> lab: FAILED in phase $$n/5 ($$what) after $$(( $$(date +%s) - start ))s$${hosts:+; failed host(s): $$hosts}; output: $$log"; \
	    exit 1; \
	  fi; \
	}; \
	phase 1 "set-up: venv, Docker engine, base images" $(MAKE) --no-print-directory venv docker images && \
	phase 2 "containers: playbooks/lab-containers.yml" ansible-playbook -i inventories/lab playbooks/lab-containers.yml && \
	strategy=$(LAB_STRATEGY) && \
	case "$$strategy" in mitogen_*) \
	  if ! python -c 'import ansible_mitogen.strategy' >/dev/null 2>&1; then \
	    echo "==> lab: Mitogen does not load with $$(ansible --version | sed -n 1p): stock strategy (linear) instead"; \
	    strategy=linear; \
	  fi ;; \
	esac && \
	phase 3 "the mesh: playbooks/site.yml (Vault, stores, gateways, edge devices; strategy $$strategy)" env ANSIBLE_STRATEGY=$$strategy ansible-playbook -i inventories/lab playbooks/site.yml && \
	phase 4 "smoke check: playbooks/lab-smoke.yml (IMAP from the edge devices and the host)" env ANSIBLE_STRATEGY=$$strategy ansible-playbook -i inventories/lab playbooks/lab-smoke.yml -e lab_show_summary=false && \
	phase 5 "summary: .build/lab/summary.txt" cat $(BUILD)/lab/summary.txt && \
	echo "==> lab: ready in $$(( $$(date +%s) - started ))s; tear down with: make lab-down"

# Removes the lab containers and network (label org.mailmesh.lab=true) and .build/lab.
lab-down:
	@echo "==> lab-down: ansible-playbook -i inventories/lab playbooks/lab-down.yml"
	@$(MAKE) --no-print-directory venv && ansible-playbook -i inventories/lab playbooks/lab-down.yml

clean:
	@echo "==> clean: .venv .build (but .build/log) .pytest_cache (Docker images and dockerd stay)"
	@rm -rf $(VENV) .pytest_cache
	@if [ -d $(BUILD) ]; then find $(BUILD) -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} +; fi
