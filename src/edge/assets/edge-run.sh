#!/bin/bash
# PID 1 of the edge proxy: runs Caddy and passes TERM and INT on to it. Stopped by a signal, it exits
# 143, so that the engine's on-failure restart policy brings the proxy back after an engine restart
# or a reboot (Caddy itself exits 0 on TERM, which on-failure would leave stopped). A `docker stop`
# by an operator is remembered by the engine as such: the proxy then stays stopped.
caddy run --config /etc/hardened-fleet/Caddyfile --adapter caddyfile &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT
wait "$child"
exit $?
