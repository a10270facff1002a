#!/bin/bash
# The edge proxy's healthcheck, without curl: Caddy answers an HTTP request on its loopback
# health address (bash's /dev/tcp; the image has no HTTP client).
exec 3<>/dev/tcp/127.0.0.1/8081 || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
IFS= read -r -t 2 status <&3 || exit 1
case "$status" in
	"HTTP/1.0 200"* | "HTTP/1.1 200"*) exit 0 ;;
esac
echo "unexpected answer: $status"
exit 1
