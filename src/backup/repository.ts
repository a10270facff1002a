/**
 * A customer's restic repository, from its environment's `backup.repository` (schema.ts): one
 * repository per customer, `<repository>/<customer>`, so a damaged or pruned repository touches one
 * customer only and a drill names it. Pure.
 *
 * A job reaches an off-host repository through a relay (restic.ts): the job's own network has no
 * route anywhere, and the relay forwards one TCP port to the repository's host and nothing else.
 * Inside that network the relay answers to the repository's host name (so TLS still checks the real
 * name); a repository given by IP address is reached as RELAY_ALIAS instead.
 */
import { isOffHost } from "../config/schema";

/** The name the relay answers to when the repository is given by address. */
export const RELAY_ALIAS = "backup-repository";

export type Repository =
  | { kind: "local"; path: string }
  | { kind: "rest" | "s3"; scheme: "http" | "https"; host: string; port: number; path: string }
  | { kind: "sftp"; user: string; host: string; port: number; path: string };

const isAddress = (host: string) => /^[0-9.]+$/.test(host) || host.includes(":");

/** Parses a repository of the form backupSchema accepts (it was validated there). */
export function parseRepository(text: string): Repository {
  if (!isOffHost(text)) return { kind: "local", path: text.replace(/\/+$/, "") };
  const http = /^(rest|s3):(https?):\/\/([^/:]+)(?::([0-9]+))?(\/.*)?$/.exec(text);
  if (http) {
    const scheme = http[2] as "http" | "https";
    return { kind: http[1] as "rest" | "s3", scheme, host: http[3]!, port: http[4] ? Number(http[4]) : scheme === "https" ? 443 : 80,
      path: (http[5] ?? "").replace(/\/+$/, "") };
  }
  const sftp = /^sftp:([^@]+)@([^:]+):(\/.*)$/.exec(text);
  if (sftp) return { kind: "sftp", user: sftp[1]!, host: sftp[2]!, port: 22, path: sftp[3]!.replace(/\/+$/, "") };
  throw new Error(`not a backup repository: ${text}`);
}

/** The customer's repository under the environment's. */
export function customerRepository(base: Repository, customer: string): Repository {
  return { ...base, path: `${base.path}/${customer}` };
}

/** Where the relay connects to: the repository's host and port (none for a local path). */
export function relayTarget(repo: Repository): { host: string; port: number } | undefined {
  return repo.kind === "local" ? undefined : { host: repo.host, port: repo.port };
}

/** The name the job's restic uses for the repository's host: its own name, or RELAY_ALIAS for an address. */
export function hostInsideJob(repo: Repository): string {
  return repo.kind === "local" ? "" : isAddress(repo.host) ? RELAY_ALIAS : repo.host;
}

/** The repository as restic is told it inside the job (the local path is mounted at `mountedAt`). */
export function resticLocation(repo: Repository, mountedAt = "/repo"): string {
  switch (repo.kind) {
    case "local": return mountedAt;
    case "rest":
    case "s3": {
      const port = repo.port === (repo.scheme === "https" ? 443 : 80) ? "" : `:${repo.port}`;
      return `${repo.kind}:${repo.scheme}://${hostInsideJob(repo)}${port}${repo.path}/`;
    }
    case "sftp": return `sftp:${repo.user}@${hostInsideJob(repo)}:${repo.path}`;
  }
}

/** The repository for people: where it is, never with credentials. */
export function describeRepository(repo: Repository): string {
  switch (repo.kind) {
    case "local": return repo.path;
    case "rest":
    case "s3": return `${repo.kind}:${repo.scheme}://${repo.host}${repo.port === (repo.scheme === "https" ? 443 : 80) ? "" : `:${repo.port}`}${repo.path}`;
    case "sftp": return `sftp:${repo.user}@${repo.host}:${repo.path}`;
  }
}
