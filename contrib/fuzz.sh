#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, with ASan and UBSan) of the S3 listing parser, the
# command-line parser, and the verification of shared-cache objects.  contrib/test.sh runs it briefly (15 s per target); run it for minutes
# by hand.
#   contrib/fuzz.sh [SECONDS_PER_TARGET]      (default 150)
# A crash leaves crash-* in build-fuzz/; add it under tests/fuzz/regressions/ (the unit tests
# replay that directory) and fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-150}
[ -x build/fs/tierfs ] || contrib/setup.sh
for p in clang-14 libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
# the harnesses are meson targets of a clang build with -Dfuzz=true
[ -f build-fuzz/build.ninja ] || CC=clang-14 meson setup build-fuzz -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null
ninja -C build-fuzz --quiet tests/fuzz_list tests/fuzz_options tests/fuzz_chunkobj
status=0
for t in list options chunkobj; do
  mkdir -p "build-fuzz/corpus-$t"
  echo "== fuzz_$t for ${SECS}s"
  (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 ./tests/fuzz_$t -max_total_time="$SECS" -max_len=65536 \
      -print_final_stats=1 -close_fd_mask=$([ $t = options ] && echo 3 || echo 0) "corpus-$t" "../tests/fuzz/corpus-$t" 2>&1 | tail -12) || status=1
done
exit $status
