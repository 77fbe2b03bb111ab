#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# ksmtuned, Debian's KSM tuning daemon (a bash script reading
# /etc/ksmtuned.conf), with its thresholds bent so that it acts within
# seconds.  Under "memory pressure" (the free-memory threshold is all of
# MemTotal) it must turn KSM on with its sleep_millisecs and boost
# pages_to_scan step by step to its maximum; without pressure (thresholds
# 0) it must turn KSM off.
. /tests/clients/lib.sh

need /bin/bash /usr/sbin/ksmtuned /usr/bin/pgrep /usr/bin/ps
# ksmtuned calls pgrep (not in busybox) and ps -p (not in busybox's ps):
# procps's come first.
export PATH=/usr/bin:$PATH

LOG=/tmp/ksmtuned.log PIDFILE=/tmp/ksmtuned.pid ERR=/tmp/ksmtuned.err
BOOST=300 MAX=1250 SLEEP_MSEC=10
total=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
# ksmtuned's own formula: its sleep for a 16 GiB machine, scaled.
sleep_ms=$((SLEEP_MSEC * 16 * 1024 * 1024 / total))
[ $sleep_ms -le 10 ] && sleep_ms=10
loop=

stop_tuned() {
	[ -n "$loop" ] || return 0
	# ksmtuned's loop, its sleep and any pgrep run in its own session.
	pgid=$(awk '{ print $5 }' /proc/$loop/stat 2>/dev/null)
	if [ -n "$pgid" ] && [ "$pgid" != "$(awk '{ print $5 }' /proc/$$/stat)" ]; then
		kill -TERM "-$pgid"
	else
		kill -TERM "$loop" 2>/dev/null
	fi
	wait_for 30 "ksmtuned's loop ends" test ! -e /proc/$loop
	loop=
}
trap stop_tuned EXIT

# start_tuned COEF CONST: ksmtuned with these thresholds, in its session.
start_tuned() {
	cat > /etc/ksmtuned.conf <<-EOF
	KSM_MONITOR_INTERVAL=1
	KSM_SLEEP_MSEC=$SLEEP_MSEC
	KSM_NPAGES_BOOST=$BOOST
	KSM_NPAGES_DECAY=-50
	KSM_NPAGES_MIN=64
	KSM_NPAGES_MAX=$MAX
	KSM_THRES_COEF=$1
	KSM_THRES_CONST=$2
	DEBUG=1
	LOGFILE=$LOG
	PIDFILE=$PIDFILE
	EOF
	rm -f $PIDFILE $LOG
	setsid /usr/sbin/ksmtuned 2>> $ERR &
	wait_for 60 "ksmtuned writes its pid file" test -s $PIDFILE
	loop=$(cat $PIDFILE)
}

# Pressure: thres = MemTotal * 100% > free memory.
: > $ERR
first=$(ksm pages_to_scan)
start_tuned 100 2048
seen=
deadline=$(($(uptime_s) + 120))
while :; do
	n=$(ksm pages_to_scan)
	case " $seen " in *" $n "*) ;; *) seen="$seen $n" ;; esac
	[ "$n" = $MAX ] && [ "$(ksm run)" = 1 ] && break
	[ "$(uptime_s)" -lt $deadline ] ||
		fail "pages_to_scan not boosted to $MAX in 120 s (seen:$seen)"
	sleep 0.2
done
echo "# pages_to_scan seen:$seen; run=$(ksm run)" \
	"sleep_millisecs=$(ksm sleep_millisecs) (MemTotal $total kB)"
[ "$(ksm sleep_millisecs)" = $sleep_ms ] ||
	fail "sleep_millisecs $(ksm sleep_millisecs), not $sleep_ms"
# Each step must be one of ksmtuned's: BOOST, 2 x BOOST... up to MAX, in
# that order, after the value from before ksmtuned.
last=0
for n in $seen; do
	[ "$n" = "$first" ] && [ $last = 0 ] && continue
	[ $((n % BOOST)) = 0 ] || [ "$n" = $MAX ] ||
		fail "pages_to_scan $n is no step of ksmtuned's"
	[ "$n" -gt $last ] || fail "pages_to_scan went down: $seen"
	last=$n
done
grep -q 'start ksm' $LOG && grep -q boost $LOG ||
	fail "ksmtuned's log shows no start and boost: $(tail -n 5 $LOG)"
tail -n 3 $LOG | sed 's/^/# ksmtuned: /'
stop_tuned

# No pressure: thresholds 0, free memory is above them, KSM goes off.
start_tuned 0 0
wait_for 60 "ksmtuned turns KSM off" ksm_is run 0
grep -q 'stop ksm' $LOG || fail "ksmtuned's log shows no stop"
tail -n 1 $LOG | sed 's/^/# ksmtuned: /'
stop_tuned
[ -s $ERR ] && fail "ksmtuned complained: $(head -n 5 $ERR)"
pass "ksmtuned turned KSM on, boosted pages_to_scan to $MAX, turned it off"
