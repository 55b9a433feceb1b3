#!/usr/bin/env bash
# The whole test suite: install, build (plain, AddressSanitizer+UBSan, ThreadSanitizer), C unit
# tests (also under valgrind and both sanitizers), and the pytest integration tests against a
# real s3rver and real FUSE mounts, on all three builds, and a part of them against Ceph RGW.  Extra arguments go to pytest (e.g.
# -k listing).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/setup.sh --asan --tsan

echo "== C unit tests"
meson test -C build --print-errorlogs
meson test -C build --setup valgrind --print-errorlogs
meson test -C build-asan --print-errorlogs
# RocksDB and libcurl are not built for TSan: tests/tsan.supp says what is not tierfs's
export TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp second_deadlock_stack=1"
TIERFS_UNIT_STARTUP_CHUNKS=20000 meson test -C build-tsan --print-errorlogs

echo "== integration tests (build)"
/usr/bin/python3 -m pytest -q tests "$@"

# the second server: Ceph's RADOS Gateway (contrib/rgw.sh), for the S3 client's contract and
# a representative part of the integration tests (TIERFS_S3_SERVER=rgw picks it)
echo "== integration tests (build) against Ceph RGW"
contrib/rgw.sh install
TIERFS_S3_SERVER=rgw /usr/bin/python3 -m pytest -q tests/test_s3client.py tests/test_read.py \
  tests/test_listing.py tests/test_keys.py tests/test_l2.py tests/test_tools.py tests/test_shared.py "$@"

echo "== integration tests (build-asan: AddressSanitizer + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TIERFS_BIN="$PWD/build-asan/fs/tierfs" /usr/bin/python3 -m pytest -q tests "$@"

echo "== integration tests (build-tsan: ThreadSanitizer)"
TIERFS_BIN="$PWD/build-tsan/fs/tierfs" /usr/bin/python3 -m pytest -q tests "$@"
unset TSAN_OPTIONS

# the short version of the fuzzing; TIERFS_FUZZ_SECONDS=150 (or contrib/fuzz.sh 150) for a long one
echo "== coverage-guided fuzzing (libFuzzer), ${TIERFS_FUZZ_SECONDS:-15}s per target"
contrib/fuzz.sh "${TIERFS_FUZZ_SECONDS:-15}"
