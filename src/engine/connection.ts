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
import { readStackConfig } from "../project/stackFiles";
import { engineAt } from "./client";

// where the options come from: engine/client.ts, shared with the dynamic providers
export { dockerodeOptions } from "./client";

// the config key is config/load.ts's (the stack files module writes it too)
import { DOCKER_HOST_KEY } from "../config/load";
export { DOCKER_HOST_KEY };

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

/** A client for the engine an environment deploys to (engine/client.ts: dockerode is loaded on first use). */
export function engineFor(projectDir: string, environment: string): Dockerode {
  return engineAt(dockerHost(projectDir, environment));
}

