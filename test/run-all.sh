#!/usr/bin/env bash
# Installs everything the tests need, type-checks and compiles, lints, runs every tap test (or the
# compiled test files named as arguments, e.g. dist/test/cli.test.js), reports each file as it
# finishes, and ends with one plain line "N passed, N failed" (assertions, flattened).
set -uo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for tool in socat chromium; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
# Debian keeps PostgreSQL's initdb and postgres off PATH, under /usr/lib/postgresql/<version>/bin
# (test/fixtures/postgres.ts looks there); the tests start their own throwaway server.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# HAProxy fronts the multi-node tests (test/fixtures/haproxy.ts); Debian puts it in /usr/sbin.
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
if [ ${#need_apt[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need_apt[*]} from Debian"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}") >/dev/null 2>&1 ||
    echo "warning: could not install ${need_apt[*]}; tests that need them will report it"
fi

# A root farm runs process-isolated plugins as nobody (docs/security.md), so nobody must reach the
# compiled farm, node_modules and the test fixtures, as in an install under /opt or /usr/lib. A
# clone in a private folder (mkdtemp makes 0700 ones) is opened for traversal only (o+x).
if [ "$(id -u)" = 0 ]; then
  dir=$(pwd -P)
  while [ "$dir" != / ]; do chmod o+x "$dir"; dir=$(dirname "$dir"); done
fi

# npm ci builds the package (prepare); build:all type-checks and compiles the tests and the
# bench beside it into dist/, where tap runs them as the JavaScript that ships.
npm ci --no-audit --no-fund --loglevel=error || exit 1

failed_checks=0
if ! npm run -s build:all; then
  echo "tsc reported errors"
  failed_checks=1
fi

# ESLint (eslint.config.js): a lint error or warning counts as one failure, as a tsc error does.
if ! npm run -s lint; then
  echo "eslint reported problems"
  failed_checks=$((failed_checks + 1))
fi

# One line per test file as it finishes, then the plain "N passed, N failed" (test/report.js).
if [ $# -gt 0 ]; then expected=$#; else expected=$(npx tap list | wc -l); fi
echo "running $expected test files, 2 at a time (about 6 minutes on 2 cores)"
npx tap --reporter=tap "$@" | node test/report.js "$expected" "$failed_checks"
statuses=("${PIPESTATUS[@]}")
# tap failing with every assertion passed (a crash between files) still fails the run.
if [ "${statuses[0]}" -ne 0 ] && [ "${statuses[1]}" -eq 0 ]; then echo "tap exited ${statuses[0]}"; exit 1; fi
exit "${statuses[1]}"
