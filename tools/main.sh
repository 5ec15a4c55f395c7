#!/usr/bin/env bash
# The main job with the embedded defaults: the local pip executor and ./wheelhouse on disk.
# Builds the CLI, then turns recipes/$RECIPE.txt (default: the README's example, a Django app on
# PostgreSQL) into wheels for every requirement and dependency, and writes its lock beside the recipe.
# pip's own configuration (indexes, find-links) is respected, as pip does.
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false

# The local executor needs python3 with pip (>= 22.2) and venv.
if ! python3 -c 'import venv, ensurepip, pip' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing python3-pip python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip python3-venv >/dev/null
  else
    echo "python3 with pip and venv is needed: sudo apt-get install python3-pip python3-venv" >&2
    exit 1
  fi
fi

npx nx run-many -t build --output-style=static >/dev/null
CEXT=${CEXT:-False} node apps/cli/bin/dstack-factory.cjs build "${RECIPE:-example}" "$@"
node apps/cli/bin/dstack-factory.cjs wheelhouse list
