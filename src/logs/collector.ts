/**
 * The log collector of an environment (target docker), computed from config alone: Debian's rsyslog
 * taking every customer container's lines over UDP (src/logs/driver.ts) and writing them per customer
 * into its volume, and logrotate bounding each customer's lines by size and age (docs/logs.md).
 * It publishes no port: the engine sends to its address on its own network, where it is the only
 * container, so it has the network's first address whenever it is made again.
 * Hardened like every container fleet makes: the same ContainerSpec mapping, the same gate and audit.
 */
import type { EnvironmentConfig } from "../config/schema";
import {
  HARDENING_PROFILE_VERSION, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROFILE, LABEL_ROLE, ROLE_LOGS,
  logCollectorNames,
} from "../hardening/names";
import { hardenedBase, MIB, tmpfsOptions, type ContainerSpec } from "../hardening/serviceSpec";
import { COLLECTOR_CONTAINER_PORT } from "./driver";
import { rotation } from "./retention";

/** the collector's volume: `<customer>/current.log` and its rotated files `current.log.1` (newest) … */
export const LOGS_DIR = "/logs";
export const LOGS_HEALTHCHECK = ["CMD", "/usr/local/bin/logs-healthcheck"];

/** A customer's current file, and the rotated ones as logrotate names them. */
export function customerLogFile(customerId: string, rotated = 0): string {
  return `${LOGS_DIR}/${customerId}/current.log${rotated > 0 ? `.${rotated}` : ""}`;
}

export function logCollectorLabels(environment: string): Record<string, string> {
  return { [LABEL_MANAGED]: "true", [LABEL_ROLE]: ROLE_LOGS, [LABEL_ENVIRONMENT]: environment };
}

export function logCollectorSpec(env: EnvironmentConfig, image: string): ContainerSpec {
  const names = logCollectorNames(env.name, env.edge.name);
  const r = rotation(env);
  return {
    containerName: names.container,
    networkName: names.network,
    hostname: "logs",
    image,
    ...hardenedBase([]),
    // rsyslog's pid file and the logrotate configuration the start script writes
    tmpfs: { "/tmp": tmpfsOptions("/tmp", 8) },
    memoryBytes: 128 * MIB,
    memorySwapBytes: 128 * MIB,
    cpus: 0.5,
    pidsLimit: 64,
    ulimits: [{ name: "nofile", soft: 4096, hard: 4096 }],
    restart: { policy: "on-failure", maxRetries: env.restart.maxRetries },
    healthcheck: { test: LOGS_HEALTHCHECK, intervalSeconds: 5, timeoutSeconds: 3, retries: 3, startPeriodSeconds: 2 },
    healthTimeoutSeconds: env.deploy.healthTimeoutSeconds,
    // its own lines stay with the engine: it must not send them to itself
    log: { driver: "json-file", opts: { "max-size": env.logging.maxSize, "max-file": String(env.logging.maxFile) } },
    port: COLLECTOR_CONTAINER_PORT,
    // none: the engine reaches it on its network (customers cannot: Docker isolates networks from each other)
    publish: [],
    data: { volume: names.dataVolume, target: LOGS_DIR },
    env: {
      LOG_ROTATE_MAX_KIB: String(r.maxSizeKib),
      LOG_ROTATE_KEEP: String(r.keep),
      LOG_MAX_AGE_DAYS: String(r.maxAgeDays),
    },
    labels: { ...logCollectorLabels(env.name), [LABEL_PROFILE]: HARDENING_PROFILE_VERSION },
  };
}
