/**
 * A Docker Engine API client for an engine address, the one way the project makes one: fleet's
 * operations (engine/connection.ts), the swarm deployment and the dynamic providers' processes
 * (components/providerRuntime.ts loads the compiled file) all call `engineAt`.
 *
 * The address is passed in, never written to the process environment: one provider process may
 * serve resources of several engines at once. Only node modules and dockerode are imported here,
 * so a provider process loads nothing of the project's config.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type Dockerode from "dockerode";

/**
 * Dockerode options for an address such as unix:///var/run/docker.sock, tcp://host:2376 or
 * ssh://user@host; {} (dockerode's own default: DOCKER_HOST, else the local socket) when there is none.
 * TLS follows the docker CLI and the docker provider: https:// or DOCKER_TLS_VERIFY=1, with the
 * certificates in DOCKER_CERT_PATH. Pure but for reading those variables and certificate files.
 */
export function dockerodeOptions(host: string | undefined, env: NodeJS.ProcessEnv = process.env): Dockerode.DockerOptions {
  if (!host) return {};
  const url = new URL(host);
  switch (url.protocol) {
    case "unix:":
      // host: undefined, so a tcp:// DOCKER_HOST in the environment (docker-modem's default) does not win over the socket
      return { socketPath: url.pathname, host: undefined };
    case "tcp:":
    case "http:":
    case "https:": {
      const tls = url.protocol === "https:" || env.DOCKER_TLS_VERIFY === "1";
      const certs = env.DOCKER_CERT_PATH;
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
      // the agent, as docker-modem gives it when DOCKER_HOST itself is an ssh:// address
      return { protocol: "ssh", host: url.hostname, port: url.port || "22", username: url.username || undefined,
        sshOptions: { agent: env.SSH_AUTH_SOCK } };
    default:
      throw new Error(`docker host '${host}': use unix://, tcp:// or ssh:// (set docker:host or DOCKER_HOST)`);
  }
}

/**
 * A client for the engine at `host` ("" or undefined: DOCKER_HOST, else the local socket). dockerode
 * (with its ssh2) is loaded on first use, so a command that never talks to the engine does not pay for it.
 */
export function engineAt(host: string | undefined): Dockerode {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Client = require("dockerode") as typeof Dockerode;
  return new Client(dockerodeOptions(host || undefined));
}

/** The address of the engine a client talks to, as dockerodeOptions reads it back ("" for dockerode's default). */
export function engineAddress(engine: Dockerode): string {
  const m = engine.modem as { socketPath?: unknown; host?: string; port?: string | number; protocol?: string; username?: string };
  // docker-modem's own default is a function that finds the socket: "" gives the same default
  if (typeof m.socketPath === "function") return "";
  if (typeof m.socketPath === "string") return `unix://${m.socketPath}`;
  if (!m.host) return "";
  if (m.protocol === "ssh") return `ssh://${m.username ? `${m.username}@` : ""}${m.host}${m.port ? `:${m.port}` : ""}`;
  return `${m.protocol === "https" ? "https" : "tcp"}://${m.host}${m.port ? `:${m.port}` : ""}`;
}
