#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks use, when missing:
# chromium (browser tests), postgresql (the PostgreSQL store tests), postfix
# (smtp-sink/smtp-source for bench/send, with --bench), sqlite3 (the CLI whose
# .import bench/import compares against, and which tests/test_benchmarks.py
# drives; psql comes with postgresql), and with --inbox
# spamassassin and a Java runtime (make check-inbox). Needs root;
# without it, it says which tests will skip and carries on.
set -euo pipefail

# axe-core for the console's accessibility test, test-only, from the npm registry
axe_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/web/admin/.axe"
if [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ] && command -v npm >/dev/null 2>&1; then
  npm install --prefix "$axe_dir" axe-core@4 --no-package-lock --no-audit --no-fund >/dev/null 2>&1 \
    || echo "note: axe-core could not be installed; the console's accessibility checks will skip" >&2
fi

want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql)
# the sqlite3 CLI: bench/import's loader, and its smoke test in the suite
command -v sqlite3 >/dev/null 2>&1 || want+=(sqlite3)
if [ "${1:-}" = "--bench" ]; then
  command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || want+=(postfix)
fi
if [ "${1:-}" = "--inbox" ]; then
  # make check-inbox: SpamAssassin (local rules) and a Java runtime for the Nu checker
  command -v spamassassin >/dev/null 2>&1 || want+=(spamassassin)
  command -v java >/dev/null 2>&1 || want+=(default-jre-headless)
fi
[ ${#want[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: not root or no apt-get; missing ${want[*]}: the tests that need them will skip" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
echo "installing Debian packages: ${want[*]}"
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
