#!/usr/bin/env bash
# Runs keygate's whole test suite: formatting, vet, and every test with the
# race detector, the vault's server tests once on each store. Anything the
# tests need beyond Go (PostgreSQL) is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted >&2
	exit 1
fi
go vet ./...

# The certificate tests hand what the vault writes to Debian's openssl.
if ! command -v openssl >/dev/null; then
	apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

# One PostgreSQL for every package that tests against it, on loopback in a
# temporary folder, stopped on the way out.
pgdir=$(mktemp -d /tmp/keygate-pg.XXXXXX)
trap 'scripts/postgres.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
KEYGATE_TEST_POSTGRES=$(scripts/postgres.sh start "$pgdir")
export KEYGATE_TEST_POSTGRES

go test -race -count=1 -timeout 12m "$@" ./...
# The vault's API tests again, on PostgreSQL.
KEYGATE_TEST_STORE=postgres go test -race -count=1 -timeout 12m "$@" ./internal/server/
