#!/usr/bin/env bash
# The main job with the embedded defaults: build the CLI, then run it on the seed's example recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false
npx nx run-many -t build --output-style=static >/dev/null
node apps/cli/bin/dstack-factory.js recipe show recipes/django-1.10.5.txt
