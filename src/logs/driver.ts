/**
 * Where a customer's container sends its lines, computed from config and the address its environment
 * stack published (docs/logs.md).
 *
 * With a log collector (target docker: one per environment, src/logs/collector.ts): Docker's syslog
 * driver, over UDP straight to the collector's address on its own network, which only this host's
 * engine reaches (no published port: Docker's userland proxy drops UDP bursts). UDP because the engine
 * never waits on it: a container starts and runs while the collector restarts, where a TCP or
 * unix-socket address fails the container's start when nothing listens. The engine's dual logging
 * keeps a local copy as well, so `docker logs` works as before.
 *
 * Without one (target swarm, or an environment stack from before the collector): json-file.
 */
import type { EnvironmentConfig } from "../config/schema";

/** The collector's port inside its container (UDP; unprivileged: it runs with no capability). */
export const COLLECTOR_CONTAINER_PORT = 5514;

/** The syslog address of a collector at `ip` on its network. */
export function collectorAddress(ip: string): string {
  return `udp://${ip}:${COLLECTOR_CONTAINER_PORT}`;
}

/**
 * The syslog tag of a customer's container: `<customer>.<container id, 12 hex>` (the engine fills the
 * id), so the collector files each line under its customer and keeps which container wrote it.
 */
export function customerLogTag(customerId: string): string {
  return `${customerId}.{{.ID}}`;
}

export function customerLog(
  env: Pick<EnvironmentConfig, "logging">, customerId: string, collector?: string,
): { driver: "json-file" | "syslog"; opts: Record<string, string> } {
  const local = { "max-size": env.logging.maxSize, "max-file": String(env.logging.maxFile) };
  if (!collector) return { driver: "json-file", opts: local };
  return {
    driver: "syslog",
    opts: {
      "syslog-address": collector,
      // RFC 5424 with microseconds: lines of consecutive containers sort by time
      "syslog-format": "rfc5424micro",
      tag: customerLogTag(customerId),
      // dual logging: the engine's own copy, for `docker logs`, bounded like json-file's
      "cache-max-size": local["max-size"],
      "cache-max-file": local["max-file"],
    },
  };
}
