# The two entry points (see README.md). Both install what they need first.
.PHONY: setup bake test lint

setup:
	./scripts/setup.sh

bake: setup
	.venv/bin/nodeforge bake --target local

test: setup
	./scripts/test.sh

lint: setup
	./scripts/lint.sh
