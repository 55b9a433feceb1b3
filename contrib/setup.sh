#!/usr/bin/env bash
# Installs what tierfs needs on Debian 12 (packages that are missing, the pinned npm s3rver with
# its one-line fix) and builds it into ./build.  Idempotent: a second run only rebuilds.
#   contrib/setup.sh            install + build
#   contrib/setup.sh --asan     also build ./build-asan with AddressSanitizer and UBSan
#   contrib/setup.sh --tsan     also build ./build-tsan with ThreadSanitizer (both flags may be given)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(meson ninja-build pkg-config gcc libc6-dev fuse3 libfuse3-dev libcurl4-openssl-dev
      libxml2-dev librocksdb-dev libxxhash-dev libssl-dev python3-pytest python3-boto3 curl valgrind patch attr
      rsync git strace vim-tiny zstd)

SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm: any installation will do (a NodeSource nodejs bundles npm and conflicts
# with Debian's npm package), so look for the commands, not the packages.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# s3rver, pinned in package-lock.json, plus contrib/s3rver/common-prefixes.patch: s3rver 3.7.1
# leaves out CommonPrefixes for prefixes that hold only deeper keys (see the README).
if [ ! -x node_modules/.bin/s3rver ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if patch -p1 -R --dry-run -s -d node_modules/s3rver < contrib/s3rver/common-prefixes.patch >/dev/null 2>&1; then
  :   # already applied
else
  patch -p1 -s -d node_modules/s3rver < contrib/s3rver/common-prefixes.patch
fi

[ -d build ] || meson setup build -Dwerror=true >/dev/null
ninja -C build --quiet
for arg in "$@"; do
  case "$arg" in
    --asan)
      [ -d build-asan ] || meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined \
          -Db_lundef=false -Dbuildtype=debug >/dev/null
      ninja -C build-asan --quiet ;;
    --tsan)
      [ -d build-tsan ] || meson setup build-tsan -Dwerror=true -Db_sanitize=thread \
          -Db_lundef=false -Dbuildtype=debug >/dev/null
      ninja -C build-tsan --quiet ;;
    *) echo "setup: unknown argument '$arg' (--asan, --tsan)" >&2; exit 2 ;;
  esac
done
echo "setup: built build/fs/tierfs"
