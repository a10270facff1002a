"""Container healthcheck with the app's own runtime: no curl or wget in the image."""
import os
import sys
import urllib.request

port = os.environ.get("PORT", "8000")
path = os.environ.get("HEALTH_PATH", "/healthz")
try:
    with urllib.request.urlopen("http://127.0.0.1:%s%s" % (port, path), timeout=3) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except Exception as exc:  # any failure is unhealthy
    print("unhealthy: %s" % exc, file=sys.stderr)
    sys.exit(1)
