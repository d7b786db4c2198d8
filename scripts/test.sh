#!/usr/bin/env bash
# Runs keygate's whole test suite: formatting, vet, and every test with the
# race detector. Anything the tests need beyond Go is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted >&2
	exit 1
fi
go vet ./...
go test -race -count=1 -timeout 12m "$@" ./...
