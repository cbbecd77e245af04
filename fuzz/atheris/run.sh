#!/bin/sh
# Run the atheris daemon target for SECONDS (default $FUZZ_SECONDS or 60) on a
# scratch copy of the committed corpus (new inputs go to fuzz/build/atheris/corpus,
# the seeds in fuzz/atheris/corpus stay as they are).  A failing input is
# written to fuzz/build/atheris/crash-* and the script exits non-zero.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_ARG="${1:-${FUZZ_SECONDS:-60}}"
PY="${PYTHON:-.venv/bin/python}"
OUT=fuzz/build/atheris
mkdir -p "$OUT/corpus"
exec "$PY" fuzz/atheris/fuzz_daemon.py -max_total_time="$SECONDS_ARG" -print_final_stats=1 \
    -timeout=30 -rss_limit_mb=2048 -artifact_prefix="$OUT/" "$OUT/corpus" fuzz/atheris/corpus
