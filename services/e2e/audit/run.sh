#!/usr/bin/env bash
# Runs the GraphQL-over-HTTP audit (audit.mjs) against the URL in $1, installing the
# pinned graphql-http (package-lock.json) first when it is missing.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/graphql-http/package.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
exec node audit.mjs "$1"
