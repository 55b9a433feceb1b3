#!/usr/bin/env bash
# The whole test suite: install, build (plain and sanitized), C unit tests (also under
# valgrind), and the pytest integration tests against a real s3rver and real FUSE mounts, on
# both builds.  Extra arguments go to pytest (e.g. -k listing).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/setup.sh --asan

echo "== C unit tests"
meson test -C build --print-errorlogs
meson test -C build --setup valgrind --print-errorlogs
meson test -C build-asan --print-errorlogs

echo "== integration tests (build)"
/usr/bin/python3 -m pytest -q tests "$@"

echo "== integration tests (build-asan: AddressSanitizer + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TIERFS_BIN="$PWD/build-asan/fs/tierfs" /usr/bin/python3 -m pytest -q tests "$@"

# the short version of the fuzzing; TIERFS_FUZZ_SECONDS=150 (or contrib/fuzz.sh 150) for a long one
echo "== coverage-guided fuzzing (libFuzzer), ${TIERFS_FUZZ_SECONDS:-15}s per target"
contrib/fuzz.sh "${TIERFS_FUZZ_SECONDS:-15}"
