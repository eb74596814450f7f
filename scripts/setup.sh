#!/usr/bin/env bash
# Install everything nodeforge needs on a fresh Debian 12 machine, then make sure a Docker engine runs.
# Idempotent: a second run only checks. Used by `make bake` and `make test` (and so by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# apt-cacher-ng: the test run's package cache (tests/conftest.py starts its own on 127.0.0.1 over .cache/; the
# package's system service is not used).
APT_PACKAGES=(docker.io packer mmdebstrap qemu-system-x86 qemu-utils e2fsprogs busybox-static
  python3-venv iptables cryptsetup-bin erofs-utils squashfs-tools fdisk cpio
  grub-pc-bin grub-efi-amd64-bin ovmf dosfstools mtools socat openssl apt-cacher-ng)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing apt packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's cloud kernel in the apt cache (not installed): tests/e2e/test_immutable_signature.py boots it.
if ! compgen -G "/var/cache/apt/archives/linux-image-*-cloud-amd64_*_amd64.deb" >/dev/null; then
  echo "setup: downloading linux-image-cloud-amd64 into the apt cache"
  apt-get install -y -qq --download-only --no-install-recommends linux-image-cloud-amd64 >/dev/null
fi

PY=${NODEFORGE_PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: creating .venv from requirements.txt"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -r requirements.txt
  .venv/bin/pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

# The bootstrap agent runs on the node's python3 (3.7 on Amazon Linux 2): its unit tests also run under CPython 3.7
# and 3.8 (tests/unit/test_agent_pythons.py), each in a venv made from pyenv's interpreter with requirements-agent.txt.
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
want=$(sha256sum requirements-agent.txt | cut -d' ' -f1)
for version in 3.7 3.8; do
  venv=.cache/agent-python/$version
  [[ -x $venv/bin/python && -f $venv/.requirements.sha256 && $(cat "$venv/.requirements.sha256") == "$want" ]] && continue
  interpreter=$(find "$PYENV_ROOT/versions" -maxdepth 3 -path "*/versions/$version.*/bin/python$version" 2>/dev/null | sort -V | tail -1)
  if [[ -z $interpreter ]]; then
    echo "setup: CPython $version not found under $PYENV_ROOT/versions (install it: pyenv install $version)" >&2
    exit 1
  fi
  echo "setup: creating $venv ($interpreter) from requirements-agent.txt"
  rm -rf "$venv"
  "$interpreter" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r requirements-agent.txt
  echo "$want" > "$venv/.requirements.sha256"
done

# A Docker engine: the host has no systemd, so start dockerd ourselves when none answers.
if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd"
  mkdir -p /var/lib/docker /run/docker
  setsid dockerd --pidfile /run/nodeforge-dockerd.pid >/var/log/nodeforge-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start, see /var/log/nodeforge-dockerd.log" >&2; exit 1; }
fi
echo "setup: ready ($ROOT/.venv, docker $(docker version --format '{{.Server.Version}}'))"
