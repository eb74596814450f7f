#!/bin/sh
# Give Ansible a target Python it supports (ansible-core 2.19: Python >= 3.8), before any fact gathering.
# Runs through the raw module with /bin/sh: no Python needed. Prints the interpreter's path on the last line;
# prints NODEFORGE_CHANGED when it installed something.
# Usage: target-python.sh MIN_MAJOR.MIN_MINOR [PREFERRED_INTERPRETER]
set -eu
min="$1"
preferred="${2:-}"
ok() {  # the interpreter runs and is at least $min
  [ -x "$1" ] && "$1" -c "import sys; sys.exit(0 if sys.version_info[:2] >= tuple(int(p) for p in '$min'.split('.')) else 1)" 2>/dev/null
}
. /etc/os-release
if [ "${ID:-}" = amzn ] && [ "${VERSION_ID:-}" = 2 ]; then
  # Amazon Linux 2: python3 is 3.7; python3.8 comes from the amazon-linux-extras topic of that name.
  if ! ok /usr/bin/python3.8; then
    amazon-linux-extras install -y python3.8 >&2
    echo NODEFORGE_CHANGED
  fi
  ok /usr/bin/python3.8 || { echo "python3.8 from amazon-linux-extras does not run" >&2; exit 1; }
  echo /usr/bin/python3.8
  exit 0
fi
for candidate in $preferred /usr/bin/python3 /usr/libexec/platform-python; do
  if ok "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done
echo "no Python >= $min on ${PRETTY_NAME:-this host}: install one (ansible-core needs it on the target)" >&2
exit 1
