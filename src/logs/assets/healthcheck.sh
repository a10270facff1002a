#!/bin/bash
# The log collector's healthcheck: rsyslogd runs (its pid file names a live process) and its volume takes writes.
pid=$(cat /tmp/rsyslogd.pid 2>/dev/null) || { echo "rsyslogd has no pid file"; exit 1; }
kill -0 "$pid" 2>/dev/null || { echo "rsyslogd ($pid) is not running"; exit 1; }
probe=/logs/.health.$$
{ : >"$probe" && rm -f "$probe"; } 2>/dev/null || { echo "/logs takes no writes"; exit 1; }
exit 0
