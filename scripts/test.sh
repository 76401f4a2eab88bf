#!/usr/bin/env bash
# Builds Keel (debug) and runs every test: unit, service (in-process gRPC) and end-to-end
# (the real executables on loopback ports).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
swift build --build-tests
swift test --skip-build --disable-xctest "$@"
