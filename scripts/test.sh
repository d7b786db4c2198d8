#!/usr/bin/env bash
# Runs keygate's whole test suite: formatting, vet, and every test with the
# race detector, the vault's server tests once on each store. Anything the
# tests need beyond Go (PostgreSQL, openssl, curl) is installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted >&2
	exit 1
fi
go vet ./...

# Tools no one here wrote check what keygate makes: Debian's openssl opens
# the certificates the vault writes, curl runs the command that `keygate
# up` prints, and Node.js runs the Azure SDK for JavaScript (compat/js).
missing=()
for tool in openssl curl; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The JavaScript SDK at the versions compat/js/package-lock.json pins;
# installed again only when the lock changed since the last install, which
# leaves a copy of the lock it installed in node_modules.
stamp=compat/js/node_modules/.keygate-installed-lock.json
if ! cmp -s compat/js/package-lock.json "$stamp" 2>/dev/null; then
	(cd compat/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	cp compat/js/package-lock.json "$stamp"
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
