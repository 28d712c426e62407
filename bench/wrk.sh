#!/usr/bin/env bash
# The external measurement of BENCHMARKS.md: wrk (1 thread, 128 connections)
# against `surge serve` in its own process (memory, pebble and redis backends;
# redis-server on a free loopback port, never 6379), alternating with a bare
# fasthttp floor server in its own process, in the same run. Prints the
# measurement as markdown; the page generator runs the same measurement with
# `surge bench --wrk` and folds its rows into the page's summary.
#
#   bench/wrk.sh                                   # measure this tree
#   bench/wrk.sh -s /tmp/surge-before -l 2f267fc -o bench/history/wrk-before-2f267fc.md
#
# -s BIN    surge binary to measure (default: built from this tree)
# -l LABEL  how the output names it (default: the binary's path)
# -o FILE   write the section there instead of stdout
# -t SLICE  length of one wrk run, whole seconds (default 3s; 4 runs per side)
#
# The driver and the floor server are always built from this tree. Needs go,
# wrk (Debian's package) and redis-server on PATH. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

surge="" label="" out="" slice="3s"
while getopts "s:l:o:t:" opt; do
	case "$opt" in
	s) surge="$OPTARG" ;;
	l) label="$OPTARG" ;;
	o) out="$OPTARG" ;;
	t) slice="$OPTARG" ;;
	*) sed -n '2,18p' "$0" >&2; exit 2 ;;
	esac
done
command -v wrk >/dev/null || { echo "wrk.sh: wrk not on PATH (apt-get install wrk)" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "wrk.sh: redis-server not on PATH" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/surge" ./cmd/surge

args=(bench wrk --slice "$slice")
if [ -n "$surge" ]; then
	args+=(--surge "$surge" --label "${label:-$surge}")
fi
if [ -n "$out" ]; then
	args+=(--out "$out")
fi
"$tmp/surge" "${args[@]}"
