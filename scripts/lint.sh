#!/usr/bin/env bash
# Every linter the project holds itself to. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
echo "lint: yamllint";     yamllint --strict .
echo "lint: ansible-lint"; ansible-lint --profile production -q
# two commands, not `a && b`: set -e does not stop on a failing command before && (a ruff finding went unnoticed)
echo "lint: ruff";         ruff check src tests bench
ruff format --check src tests bench
echo "lint: packer fmt"
for d in packer packer/eks-node packer/kubernetes packer/immutable-ami; do packer fmt -check -diff "$d"; done
echo "lint: packer validate"
for t in packer/local.pkr.hcl; do packer validate -syntax-only "$t" >/dev/null; done
echo "lint: ok"
