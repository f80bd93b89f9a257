#!/usr/bin/env bash
# Proves the expected column of corpus.tsv is Go's: reruns every pair through Go's regexp
# (oracle.go) and fails on any difference. LinearRegexTests checks our engine against the
# same file, so together they compare the engine with Go.
#
#   Tests/regex-oracle/check.sh            check (needs golang-go)
#   Tests/regex-oracle/check.sh --update   rewrite the expected column after editing pairs
set -euo pipefail
cd "$(dirname "$0")"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go run oracle.go <corpus.tsv >"$out"
if [ "${1:-}" = "--update" ]; then
    cp "$out" corpus.tsv
    echo "regex-oracle: corpus.tsv updated from Go $(go env GOVERSION)"
    exit 0
fi
if ! diff -u corpus.tsv "$out"; then
    echo "regex-oracle: corpus.tsv disagrees with Go $(go env GOVERSION) (lines above; --update to accept)" >&2
    exit 1
fi
echo "regex-oracle: $(grep -cv '^#\|^$' corpus.tsv) pairs agree with Go $(go env GOVERSION)"
