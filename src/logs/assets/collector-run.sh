#!/bin/bash
# PID 1 of the log collector: runs rsyslogd, and logrotate once a minute. Stopped by a signal it exits
# 143 (like the edge proxy), so the engine's on-failure restart policy brings it back after a reboot.
set -u
conf=/tmp/logrotate.conf
# daily, or sooner at LOG_ROTATE_MAX_KIB; LOG_ROTATE_KEEP files kept, none older than LOG_MAX_AGE_DAYS
cat >"$conf" <<CONF
/logs/*/current.log {
	daily
	maxsize ${LOG_ROTATE_MAX_KIB}k
	rotate ${LOG_ROTATE_KEEP}
	maxage ${LOG_MAX_AGE_DAYS}
	missingok
	notifempty
	nocompress
	sharedscripts
	postrotate
		kill -HUP "\$(cat /tmp/rsyslogd.pid)"
	endscript
}
CONF
chmod 0644 "$conf"
rsyslogd -n -f /etc/hardened-fleet/rsyslog.conf -i /tmp/rsyslogd.pid &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT
while kill -0 "$child" 2>/dev/null; do
	sleep 60 &
	wait $!
	logrotate --state /logs/.logrotate.state "$conf" || echo "logrotate failed (exit $?)" >&2
done
wait "$child"
exit $?
