/**
 * The edge proxy of an environment, computed from config alone: its hardened container (the same
 * ContainerSpec a customer's app maps from) and each customer's hostname and URL.
 */
import type { EdgeConfig, EnvironmentConfig } from "../config/schema";
import {
  HARDENING_PROFILE_VERSION, LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PROFILE, LABEL_ROLE, ROLE_EDGE, edgeNames,
} from "../hardening/names";
import { hardenedBase, MIB, tmpfsOptions, type ContainerSpec } from "../hardening/serviceSpec";

/** Inside the container Caddy listens on unprivileged ports, so it needs no capability at all. */
export const EDGE_HTTPS_CONTAINER_PORT = 8443;
export const EDGE_HTTP_CONTAINER_PORT = 8080;
/** where the proxy keeps its local CA, certificates and route files (its volume) */
export const EDGE_DATA_DIR = "/data";
export const EDGE_HEALTHCHECK = ["CMD", "/usr/local/bin/edge-healthcheck"];
/** the kernel setting that keeps a reload from cutting queued connections (edgeProxySpec) */
export const EDGE_MIGRATE_SYSCTL = "net.ipv4.tcp_migrate_req";

/** `acme.staging.example.com`: where customer `acme` answers. */
export function customerHostname(edge: Pick<EdgeConfig, "domain">, customerId: string): string {
  return `${customerId}.${edge.domain}`;
}

/** `https://acme.staging.example.com` (with `:port` when the edge is not on 443). */
export function customerUrl(edge: Pick<EdgeConfig, "domain" | "httpsPort">, customerId: string): string {
  const port = edge.httpsPort === 443 ? "" : `:${edge.httpsPort}`;
  return `https://${customerHostname(edge, customerId)}${port}`;
}

export function edgeLabels(environment: string): Record<string, string> {
  return {
    [LABEL_MANAGED]: "true",
    [LABEL_ROLE]: ROLE_EDGE,
    [LABEL_ENVIRONMENT]: environment,
  };
}

export function edgeProxySpec(env: EnvironmentConfig, image: string): ContainerSpec {
  const { edge } = env;
  const names = edgeNames(env.name, edge.name);
  return {
    containerName: names.container,
    networkName: names.network,
    hostname: edge.name,
    image,
    ...hardenedBase([]),
    // Caddy's autosaved config (XDG_CONFIG_HOME) is all it writes outside its volume
    tmpfs: { "/tmp": tmpfsOptions("/tmp", 16) },
    memoryBytes: edge.resources.memoryMb * MIB,
    memorySwapBytes: edge.resources.memoryMb * MIB,
    cpus: edge.resources.cpus,
    pidsLimit: edge.resources.pids,
    // one descriptor per client connection and one per upstream connection; no nproc (per host UID,
    // shared with every customer's 1000): pidsLimit bounds the proxy
    ulimits: [{ name: "nofile", soft: 16384, hard: 16384 }],
    // `caddy reload` opens a new listening socket (SO_REUSEPORT) and closes the old config's: without
    // this (Linux 5.14+), connections queued on the old one when it closes are reset (a client sees its
    // TLS handshake cut); with it the kernel hands them to the new socket
    sysctls: { [EDGE_MIGRATE_SYSCTL]: "1" },
    restart: { policy: "on-failure", maxRetries: env.restart.maxRetries },
    healthcheck: { test: EDGE_HEALTHCHECK, intervalSeconds: 5, timeoutSeconds: 3, retries: 3, startPeriodSeconds: 2 },
    healthTimeoutSeconds: env.deploy.healthTimeoutSeconds,
    log: { driver: "json-file", opts: { "max-size": env.logging.maxSize, "max-file": String(env.logging.maxFile) } },
    port: EDGE_HTTPS_CONTAINER_PORT,
    publish: [
      { hostIp: edge.address, hostPort: edge.httpsPort, containerPort: EDGE_HTTPS_CONTAINER_PORT },
      { hostIp: edge.address, hostPort: edge.httpPort, containerPort: EDGE_HTTP_CONTAINER_PORT },
    ],
    data: { volume: names.dataVolume, target: EDGE_DATA_DIR },
    // the redirect from plain HTTP names the port clients reach HTTPS on (the Caddyfile's placeholder)
    env: { EDGE_HTTPS_PORT_SUFFIX: edge.httpsPort === 443 ? "" : `:${edge.httpsPort}` },
    labels: { ...edgeLabels(env.name), [LABEL_PROFILE]: HARDENING_PROFILE_VERSION },
  };
}
