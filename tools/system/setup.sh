#!/usr/bin/env bash
# Installs (as root, with apt) and checks the system components the tests use. On a machine without
# root or apt it says exactly what to install. Idempotent: quick when everything is already there.
set -euo pipefail

# Debian packages the test suite needs, and the command that proves each is there.
declare -A NEED=(
  [git]=git
  [python3]=python3
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
[ -d /usr/share/python-wheels ] && ls /usr/share/python-wheels/wheel-*.whl >/dev/null 2>&1 || missing+=(python3-wheel-whl)
[ -d /usr/share/python-wheels ] && ls /usr/share/python-wheels/setuptools-*.whl >/dev/null 2>&1 || missing+=(python3-setuptools-whl)
[ -d /usr/share/python-wheels ] && ls /usr/share/python-wheels/pip-*.whl >/dev/null 2>&1 || missing+=(python3-pip-whl)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# pip 23.2's parser drives the recipe parser's differential test.
python3 -c 'import pip, sys; v = tuple(int(x) for x in pip.__version__.split(".")[:2]); sys.exit(0 if v >= (22, 2) else 1)' || {
  echo "python3 -m pip >= 22.2 is required (python3 -m ensurepip --upgrade)" >&2
  exit 1
}
echo "system components ready"
