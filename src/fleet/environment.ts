/**
 * An environment as fleet operations see it, loaded once by an entry point (a CLI command, a webhook
 * job, a benchmark) and passed down: its config parsed from its stack file, the engine it deploys to
 * and its DeployTarget. Nothing below re-reads the environment's file.
 */
import * as fs from "node:fs";
import type Dockerode from "dockerode";
import { ConfigError } from "../config/errors";
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import { parseEnvironmentName, type StackTarget } from "../config/targets";
import type { FleetContext } from "../project/context";
import { customerConfigs, readEnvironmentFile, stackFile } from "../project/stackFiles";
import type { StackSettings } from "../pulumi/stacks";
import { passphraseOf } from "../pulumi/workspace";
import { deployTargetFor, type DeployTarget } from "../targets";
import { engineAt } from "../engine/client";

export interface Environment {
  readonly ctx: FleetContext;
  readonly name: string;
  readonly config: EnvironmentConfig;
  readonly target: DeployTarget;
  /** `docker:host` of the environment's stack file: every customer stack file it writes gets it too */
  readonly dockerHost: string | undefined;
  /** the address of the engine it deploys to: dockerHost, else DOCKER_HOST; undefined: the local socket */
  readonly engineHost: string | undefined;
  /** the engine it deploys to (on a swarm: the manager), connected on first use */
  engine(): Dockerode;
  /** what a Pulumi run of one of its stacks needs: the passphrase and the engine */
  stackSettings(stack: StackTarget): StackSettings;
  /** its customers' stack files, read now (provision and rollout write them meanwhile) */
  customers(): CustomerConfig[];
}

/** The environment `name` of the project, read once; a ConfigError naming `source` when it has no stack file. */
export function loadEnvironment(ctx: FleetContext, name: string, source = "--env"): Environment {
  const { environment } = parseEnvironmentName(name, source);
  if (!fs.existsSync(stackFile(ctx.projectDir, environment))) {
    throw new ConfigError(source, [{ path: source, found: JSON.stringify(environment),
      message: `names no environment stack of this project (no Pulumi.${environment}.yaml): use staging or prod, or add that file` }]);
  }
  const { config, dockerHost } = readEnvironmentFile(ctx.projectDir, environment);
  // the docker provider's precedence: the stack's docker:host, else DOCKER_HOST, else the local socket
  const engineHost = dockerHost ?? (process.env.DOCKER_HOST || undefined);
  let client: Dockerode | undefined;
  const engine = (): Dockerode => (client ??= engineAt(engineHost));
  return {
    ctx, name: environment, config, dockerHost, engineHost, engine,
    target: deployTargetFor(config, engineHost, engine),
    stackSettings: (stack) => ({ passphrase: passphraseOf(config, stack), engine }),
    customers: () => customerConfigs(ctx.projectDir, environment),
  };
}
