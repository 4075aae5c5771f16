#!/usr/bin/env bash
# Installs everything the tests need, type-checks, lints, runs every tap test, and ends with one
# plain line "N passed, N failed" (assertions, flattened across subtests).
set -uo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for tool in socat chromium; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
if [ ${#need_apt[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need_apt[*]} from Debian"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}") >/dev/null 2>&1 ||
    echo "warning: could not install ${need_apt[*]}; tests that need them will report it"
fi

# npm ci builds the package (prepare); build:all type-checks and compiles the tests and the
# bench beside it into dist/, where tap runs them as the JavaScript that ships.
npm ci --no-audit --no-fund --loglevel=error || exit 1

failed_types=0
if ! npm run -s build:all; then
  echo "tsc reported errors"
  failed_types=1
fi

# ESLint (eslint.config.js): a lint error or warning counts as one failure, as a tsc error does.
failed_lint=0
if ! npm run -s lint; then
  echo "eslint reported problems"
  failed_lint=1
fi

out=$(mktemp)
npx tap --reporter=tap "$@" | tee "$out.raw" | npx tap-parser -f -t > "$out"
tap_status=${PIPESTATUS[0]}
cat "$out.raw"
passed=$(grep -cE '^ok ' "$out")
failed=$(grep -cE '^not ok ' "$out")
failed=$((failed + failed_types + failed_lint))
if [ "$tap_status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
rm -f "$out" "$out.raw"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
