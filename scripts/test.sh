#!/usr/bin/env bash
# The whole test suite: lint, unit tests, every Molecule scenario, then the local bake end to end
# (Packer build, testinfra against the image, QEMU boot). Assumes scripts/setup.sh has run (make test does).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR=0 NO_COLOR=1

./scripts/lint.sh
# Base image and fixtures first: Molecule's instances start from the base image.
nodeforge base
nodeforge fixtures
# pytest drives everything else: unit tests, Molecule scenarios (tests/e2e/test_molecule.py) and the bake.
# Four workers: the suite mostly waits on package downloads, containers and disks (about 45% of the 2 CPUs busy
# with three workers).
# Groups run in the order tests/conftest.py sorts them (longest first), not xdist's (most tests first).
exec pytest -ra --durations=25 -n "${NODEFORGE_TEST_WORKERS:-4}" --dist loadgroup --no-loadscope-reorder "$@"
