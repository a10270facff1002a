"""PID 1 of every image hardened-fleet renders: runs the image's CMD and stands between it and Docker.

- Stop signals (TERM, INT, QUIT) and HUP/USR1/USR2 are passed on to the command.
- Orphaned processes are reaped, as an init must.
- When the container was stopped by a signal, it exits 128 + that signal (143 for TERM), the shell's
  convention for "terminated by a signal", whatever the command itself returned. Docker's on-failure
  restart policy therefore brings the service back when the engine restarts (a host reboot stops
  every container with TERM first), while a deliberate `docker stop` is never restarted: Docker
  remembers that one as stopped by hand.
- Otherwise it exits with the command's own status.
"""
import os
import signal
import subprocess
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def main(argv):
    if not argv:
        sys.stderr.write("supervise.py: no command to run\n")
        return 2
    received = []
    child = None

    def forward(signum, _frame):
        received.append(signum)
        if child is not None:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    child = subprocess.Popen(argv)
    if received:  # a signal that came before the child existed
        child.send_signal(received[-1])
    status = 0
    while True:
        try:
            pid, raw = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child.pid:
            status = os.waitstatus_to_exitcode(raw)
            break  # what is left goes with the container
    stops = [s for s in received if s in STOPPING]
    if stops:
        return 128 + int(stops[0])
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
