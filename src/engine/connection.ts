/**
 * The one Docker connection setting. The docker provider, the container gate (PIDs limit), the audit and every
 * fleet operation talk to the engine named here, so nothing ever inspects or changes a different
 * engine from the one deploying.
 *
 * Precedence follows the docker provider's own: `docker:host` in the environment stack's config,
 * else DOCKER_HOST, else the local socket. Fleet copies the environment's `docker:host` into every
 * customer stack file it writes, so customer stacks deploy to the same engine.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type Dockerode from "dockerode";
import { readStackConfig } from "../config/stackFiles";

export const DOCKER_HOST_KEY = "docker:host";

/** `docker:host` from the environment stack's config file, if it sets one. */
export function configuredDockerHost(projectDir: string, environment: string): string | undefined {
  if (!fs.existsSync(path.join(projectDir, `Pulumi.${environment}.yaml`))) return undefined;
  const host = readStackConfig(projectDir, environment)[DOCKER_HOST_KEY];
  return typeof host === "string" && host !== "" ? host : undefined;
}

/** The engine address for an environment, or undefined for the local default socket. */
export function dockerHost(projectDir: string, environment: string, env = process.env): string | undefined {
  return configuredDockerHost(projectDir, environment) ?? (env.DOCKER_HOST || undefined);
}

/** Dockerode options for an address such as unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host. */
export function dockerodeOptions(host: string | undefined): Dockerode.DockerOptions {
  if (!host) return {};
  const url = new URL(host);
  switch (url.protocol) {
    case "unix:":
      return { socketPath: url.pathname };
    case "tcp:":
    case "http:":
    case "https:": {
      const tls = url.protocol === "https:" || process.env.DOCKER_TLS_VERIFY === "1";
      const certs = process.env.DOCKER_CERT_PATH;
      return {
        protocol: tls ? "https" : "http", host: url.hostname, port: url.port || (tls ? "2376" : "2375"),
        ...(tls && certs ? {
          ca: fs.readFileSync(path.join(certs, "ca.pem")),
          cert: fs.readFileSync(path.join(certs, "cert.pem")),
          key: fs.readFileSync(path.join(certs, "key.pem")),
        } : {}),
      };
    }
    case "ssh:":
      return { protocol: "ssh", host: url.hostname, port: url.port || "22", username: url.username || undefined };
    default:
      throw new Error(`docker host '${host}': use unix://, tcp:// or ssh:// (set ${DOCKER_HOST_KEY} or DOCKER_HOST)`);
  }
}

/**
 * A client for the engine an environment deploys to. dockerode (with its ssh2) is loaded on first
 * use, so a fleet command that never talks to the engine itself (an `up`) does not pay for it.
 */
export function engineFor(projectDir: string, environment: string): Dockerode {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Client = require("dockerode") as typeof Dockerode;
  return new Client(dockerodeOptions(dockerHost(projectDir, environment)));
}

