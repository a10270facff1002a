/**
 * What the edge proxy is told, as text and command lines (tested as exact strings): one Caddyfile
 * route per customer, in the proxy's volume, applied with `caddy reload` (a graceful switch: requests
 * in flight finish on the old route; connections still queued on the old config's socket move to the
 * new one because the proxy's container sets net.ipv4.tcp_migrate_req, edgeSpec.ts).
 */
import type { EdgeConfig } from "../config/schema";
import { EDGE_DATA_DIR } from "./edgeSpec";

export const EDGE_ROUTES_DIR = `${EDGE_DATA_DIR}/routes`;
export const EDGE_CADDYFILE = "/etc/hardened-fleet/Caddyfile";
/** the local CA's root certificate, in the proxy's volume (tls: internal) */
export const EDGE_CA_ROOT = `${EDGE_DATA_DIR}/caddy/pki/authorities/local/root.crt`;

export interface RouteInput {
  environment: string;
  customerId: string;
  hostname: string;
  /** the container that gets the traffic (it passed its healthcheck and the audit) */
  upstreamContainer: string;
  upstreamPort: number;
  tls: Pick<EdgeConfig, "tls" | "acmeEmail">;
  /** the customer's access log: rolled at maxMb, `keep` rolled files, none older than keepForHours */
  accessLog: AccessLogRoll;
}

export interface AccessLogRoll {
  maxMb: number;
  keep: number;
  keepForHours: number;
}

/** A customer's access log in the proxy's volume (Caddy rolls it into access-<time>.log beside it). */
export function accessLogDir(customerId: string): string {
  return `${EDGE_DATA_DIR}/access/${customerId}`;
}
export const ACCESS_LOG_FILE = "access.log";

export function routeFileName(customerId: string): string {
  return `${customerId}.caddy`;
}

/** The customer's site block: its hostname, its certificate and the one container it goes to. */
export function routeFile(r: RouteInput): string {
  const tls = r.tls.tls === "internal" ? "internal" : r.tls.acmeEmail!;
  return [
    `# ${r.customerId} in ${r.environment}: written by hardened-fleet (customer stack ${r.environment}-${r.customerId}); do not edit`,
    `${r.hostname} {`,
    `\ttls ${tls}`,
    `\treverse_proxy ${r.upstreamContainer}:${r.upstreamPort} {`,
    // a connection refused while the container restarts is tried again, not answered with 502 at once
    "\t\tlb_try_duration 5s",
    "\t\tlb_try_interval 250ms",
    "\t}",
    // one JSON line per request (fleet logs --access; usage counts requests and bytes from it)
    "\tlog {",
    `\t\toutput file ${accessLogDir(r.customerId)}/${ACCESS_LOG_FILE} {`,
    `\t\t\troll_size ${r.accessLog.maxMb}MiB`,
    `\t\t\troll_keep ${r.accessLog.keep}`,
    `\t\t\troll_keep_for ${r.accessLog.keepForHours}h`,
    "\t\t}",
    "\t\tformat json",
    "\t}",
    "}",
    "",
  ].join("\n");
}

/** Applies the route files: Caddy checks the whole config first and keeps the running one if it fails. */
export function reloadCommand(): string[] {
  return ["caddy", "reload", "--config", EDGE_CADDYFILE, "--adapter", "caddyfile", "--address", "localhost:2019"];
}

export function removeRouteCommand(customerId: string): string[] {
  return ["rm", "-f", `${EDGE_ROUTES_DIR}/${routeFileName(customerId)}`];
}
