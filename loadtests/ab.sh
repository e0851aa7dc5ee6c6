#!/usr/bin/env bash
# An interleaved A/B load test of two commits; see loadtests/ab.py --help.
#   loadtests/ab.sh 7bd2b3c main --runs 3 --mix both
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m loadtests.ab "$@"
