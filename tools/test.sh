#!/usr/bin/env bash
# Runs every test: the system components first (installed and started by tools/system/setup.sh),
# then build, typecheck, lint and the whole vitest suite. Ends with the line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false

failed_checks=0
step() {
  local name=$1
  shift
  echo "::: $name"
  if ! "$@"; then
    echo "::: $name FAILED"
    failed_checks=$((failed_checks + 1))
  fi
}

step "system components" bash tools/system/setup.sh
step "build" npx nx run-many -t build --output-style=static
step "typecheck" npx tsc -p tsconfig.json --noEmit
step "lint" npm run --silent lint

mkdir -p .tmp
rm -f .tmp/vitest-report.json
npx vitest run "$@"
vitest_rc=$?

node tools/test-summary.mjs .tmp/vitest-report.json "$failed_checks"
summary_rc=$?
if [ "$vitest_rc" -ne 0 ] || [ "$summary_rc" -ne 0 ]; then exit 1; fi
