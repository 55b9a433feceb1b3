#!/usr/bin/env bash
# A throwaway Ceph RADOS Gateway on loopback: the second, real S3 server of the tests and of the
# benchmark suite (beside s3rver).  One monitor (msgr2 only), one OSD on memstore, radosgw's
# beast frontend, no mgr, no authentication between the daemons, and one S3 user with the same
# fixed keys as s3rver's built-in account (S3RVER / S3RVER), so the tests' credentials work on
# both servers.
#
#   contrib/rgw.sh install          the Debian packages (radosgw, ceph-mon, ceph-osd), if missing
#   contrib/rgw.sh start DIR PORT   a new cluster in DIR (empty or absent), S3 on 127.0.0.1:PORT;
#                                   returns once the S3 user answers (about 15 s cold)
#   contrib/rgw.sh stop DIR         stops the daemons started in DIR (only those: by their pid
#                                   files); DIR is kept, a second start reuses its data
#   contrib/rgw.sh restart DIR      starts DIR's daemons again with their data
#
# Facts this follows (Ceph 16.2, Debian 12): radosgw's monitor connection fails with
# "get_initial_auth_request returned -13" unless "ms mon client mode = crc secure"; a pool of
# size 1 needs "mon allow pool size one"; memstore keeps its data across a stop only with
# "osd fast shutdown = false"; most of a cold start is radosgw creating its pools.
set -euo pipefail

die() { echo "rgw.sh: $*" >&2; exit 1; }
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

install_pkgs() {
	local missing=()
	for p in radosgw ceph-mon ceph-osd; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		echo "rgw.sh: installing ${missing[*]}" >&2
		$SUDO apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null
	fi
}

# waits (up to $2 seconds) for the command in $1 to succeed
wait_for() {
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		eval "$1" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

conf() { echo "$DIR/ceph.conf"; }
ceph_() { timeout 30 ceph -c "$(conf)" "$@"; }

start_daemons() {
	local c; c=$(conf)
	ceph-mon -c "$c" -i a || die "ceph-mon did not start (see $DIR/log)"
	wait_for "ceph_ mon stat" 30 || die "the monitor does not answer (see $DIR/log)"
	ceph-osd -c "$c" -i 0 || die "ceph-osd did not start (see $DIR/log)"
	wait_for "ceph_ osd stat | grep -q '1 up'" 60 || die "the OSD does not come up (see $DIR/log)"
	rm -f "$DIR/run/client.rgw.pid" # (a stale one would end wait_s3 at once)
	radosgw -c "$c" -n client.rgw || die "radosgw did not start (see $DIR/log)"
}

# whether the radosgw started in DIR may still come up: no pid file yet, or its process runs
# (it gives up by itself when it cannot initialize within its rgw_init_timeout, 300 s)
rgw_alive() {
	local f="$DIR/run/client.rgw.pid"
	[ ! -s "$f" ] || kill -0 "$(cat "$f")" 2>/dev/null
}

wait_s3() {
	# any HTTP answer from the frontend (an anonymous request gets an S3 error document)
	# (a restart of a cluster holding a million objects takes minutes: RGW_WAIT=600)
	local up="curl -s -o /dev/null -m 2 http://127.0.0.1:$PORT/"
	wait_for "$up || ! rgw_alive" "${RGW_WAIT:-120}" && eval "$up" >/dev/null 2>&1 ||
		die "radosgw does not answer on 127.0.0.1:$PORT (see $DIR/log)"
}

start() {
	[ -e "$DIR/ceph.conf" ] && die "$DIR already holds a cluster: use restart"
	mkdir -p "$DIR"/{mon,osd,run,log}
	local fsid mon_port
	fsid=$(cat /proc/sys/kernel/random/uuid)
	mon_port=$((PORT + 1))
	cat > "$DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
osd objectstore = memstore
osd fast shutdown = false
memstore device bytes = 8589934592
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
keyring = /dev/null
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw dns name = 127.0.0.1
rgw data = $DIR/rgw
EOF
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
		"$DIR/monmap" >/dev/null
	ceph-mon -c "$DIR/ceph.conf" --mkfs -i a --monmap "$DIR/monmap" >/dev/null 2>&1 ||
		die "ceph-mon --mkfs failed (see $DIR/log)"
	ceph-mon -c "$DIR/ceph.conf" -i a || die "ceph-mon did not start (see $DIR/log)"
	wait_for "ceph_ mon stat" 30 || die "the monitor does not answer (see $DIR/log)"
	ceph_ osd create >/dev/null
	mkdir -p "$DIR/osd/ceph-0"
	ceph-osd -c "$DIR/ceph.conf" -i 0 --mkfs >/dev/null 2>&1 ||
		die "ceph-osd --mkfs failed (see $DIR/log)"
	ceph-osd -c "$DIR/ceph.conf" -i 0 || die "ceph-osd did not start (see $DIR/log)"
	wait_for "ceph_ osd stat | grep -q '1 up'" 60 || die "the OSD does not come up (see $DIR/log)"
	mkdir -p "$DIR/rgw"
	rm -f "$DIR/run/client.rgw.pid" # (a stale one would end wait_s3 at once)
	radosgw -c "$DIR/ceph.conf" -n client.rgw || die "radosgw did not start (see $DIR/log)"
	wait_s3
	timeout 60 radosgw-admin -c "$DIR/ceph.conf" user create --uid=tierfs --display-name=tierfs \
		--access-key=S3RVER --secret-key=S3RVER >/dev/null ||
		die "radosgw-admin user create failed"
}

stop() {
	local f pid any=0
	for f in "$DIR"/run/client.rgw.pid "$DIR"/run/osd.0.pid "$DIR"/run/mon.a.pid; do
		[ -s "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || continue
		any=1
		# the OSD writes memstore out on a clean stop: give it time (30 s; a million
		# objects take longer: RGW_STOP_WAIT=900, or they are lost)
		for ((i = 0; i < ${RGW_STOP_WAIT:-30} * 10; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
	[ "$any" = 1 ] || echo "rgw.sh: nothing was running in $DIR" >&2
}

cmd=${1:-}
case "$cmd" in
	install) install_pkgs ;;
	start)
		[ $# = 3 ] || die "usage: rgw.sh start DIR PORT"
		DIR=$(realpath -m "$2"); PORT=$3
		command -v radosgw >/dev/null || die "radosgw is not installed: contrib/rgw.sh install"
		start ;;
	restart)
		[ $# = 2 ] || die "usage: rgw.sh restart DIR"
		DIR=$(realpath -m "$2")
		[ -e "$DIR/ceph.conf" ] || die "$DIR holds no cluster"
		PORT=$(sed -n 's/.*beast endpoint=127.0.0.1:\([0-9]*\).*/\1/p' "$DIR/ceph.conf")
		start_daemons
		wait_s3 ;;
	stop)
		[ $# = 2 ] || die "usage: rgw.sh stop DIR"
		DIR=$(realpath -m "$2")
		stop ;;
	*) die "usage: rgw.sh install | start DIR PORT | restart DIR | stop DIR" ;;
esac
