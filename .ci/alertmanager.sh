#!/usr/bin/env bash
# Builds Prometheus Alertmanager v0.35.0 once per machine for the ingest tests
# (handlers/ingest) and prints the binary's path. The module on the Go module
# proxy lacks the web UI's built assets that ui/web.go embeds (//go:embed
# app/dist, then fs.Sub of app/dist/elm and app/dist/mantine), so it builds
# from a copy of the module with a placeholder page in each: the API and the
# notification pipeline are the real ones.
set -euo pipefail

version=v0.35.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/reactor/alertmanager-$version"
bin="$cache/alertmanager"
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(
	cd "$work"
	go mod init reactor.invalid/alertmanager-build >/dev/null 2>&1
	dir=$(go mod download -json "github.com/prometheus/alertmanager@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$dir" ] || [ ! -d "$dir" ]; then
		echo "alertmanager.sh: go mod download gave no module directory" >&2
		exit 1
	fi
	cp -R "$dir" src
	chmod -R u+w src
	for ui in elm mantine; do
		mkdir -p "src/ui/app/dist/$ui"
		echo '<!doctype html><title>Alertmanager</title><p>UI not built (reactor test build).</p>' \
			>"src/ui/app/dist/$ui/index.html"
	done
	mkdir -p "$cache"
	cd src
	echo "alertmanager.sh: building alertmanager $version into $cache (takes a minute or two)" >&2
	go build -o "$bin.tmp" ./cmd/alertmanager
	mv "$bin.tmp" "$bin"
)
echo "$bin"
