#!/usr/bin/env bash
# One command for a load test of the settlement service; see loadtests/run.py --help.
#   loadtests/run.sh --duration 60 --rate 715
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m loadtests.run "$@"
