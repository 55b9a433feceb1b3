#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts s3rver on 127.0.0.1 with a sample bucket and
# mounts it at ./mnt.   contrib/demo.sh stop   unmounts and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${TIERFS_DEMO_PORT:-4568}
STATE=.demo
MNT=$PWD/mnt
ENDPOINT=http://127.0.0.1:$PORT

stop() {
  if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" || fusermount3 -u -z "$MNT"; fi
  if [ -f $STATE/s3rver.pid ]; then kill "$(cat $STATE/s3rver.pid)" 2>/dev/null || true; rm -f $STATE/s3rver.pid; fi
}

if [ "${1:-}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

contrib/setup.sh
stop
mkdir -p $STATE/data "$MNT"
NODE_OPTIONS=--openssl-legacy-provider setsid node_modules/.bin/s3rver -d $STATE/data \
  -a 127.0.0.1 -p "$PORT" -s > $STATE/s3rver.log 2>&1 &
echo $! > $STATE/s3rver.pid
for _ in $(seq 100); do curl -s -o /dev/null "$ENDPOINT/" && break; sleep 0.1; done
/usr/bin/python3 contrib/seed_demo.py "$ENDPOINT" demo
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
  build/fs/tierfs -o endpoint="$ENDPOINT",ttl=5m demo "$MNT"
cat <<TXT

tierfs has mounted bucket 'demo' (s3rver at $ENDPOINT) read-only at ./mnt.  Try:
  ls -l mnt mnt/logs/2026/11
  cat mnt/logs/2026/11/15.log | head
  time cp mnt/datasets/big.bin /tmp/big.bin      # 64 MiB through tierfs
  find mnt/photos | wc -l
  cat mnt/.tierfs/stats                          # what each tier did
  setfattr -n user.tierfs.ttl -v 1h mnt/logs     # freshness per directory
  getfattr -d -m - mnt/logs/2026/11/15.log       # TTL in force, tiers, ETag
  contrib/tierfsctl warm mnt/photos              # fetch a tree into the disk cache
Stop the demo with:   contrib/demo.sh stop        (or: fusermount3 -u mnt)
The daemon logs to syslog; run build/fs/tierfs with -f to see its log on the terminal.
TXT
