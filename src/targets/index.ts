/**
 * The deploy target of an environment, on the operations side: the one place that looks at which
 * target an environment has. Everything else asks the DeployTarget it gets (deployTarget.ts).
 */
import type Dockerode from "dockerode";
import type { EnvironmentConfig } from "../config/schema";
import type { DeployTarget } from "./deployTarget";
import { DockerTarget } from "./docker/target";
import { engineAt } from "../engine/client";
import { SwarmTarget } from "./swarm/target";

export type { DeployTarget, LogSource, MoveResult, NodeMove, TargetEngine, TargetKind } from "./deployTarget";
export { customerTargetKind } from "./kind";

/**
 * The target of an environment whose engine is at `engineHost` (its docker:host, else DOCKER_HOST;
 * undefined: the local socket). `connect` makes the client (tests pass their own).
 */
export function deployTargetFor(env: EnvironmentConfig, engineHost: string | undefined,
  connect: () => Dockerode = () => engineAt(engineHost)): DeployTarget {
  switch (env.target) {
    case "docker":
      return new DockerTarget(env, connect);
    case "swarm":
      return new SwarmTarget(env, engineHost, connect);
  }
}
