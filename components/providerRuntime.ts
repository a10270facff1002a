/**
 * What the dynamic providers (ContainerGate, SecretFile, EdgeRoute, EdgeNetworks, SwarmService) share
 * in their own process. Pulumi serializes a provider's functions, with what they capture, into the
 * state and runs them in a process started in the program's directory; so these functions import
 * nothing at module level and load the compiled project modules at run time, by path:
 *
 *  - `projectModule`: where a compiled module is (no path in the state: a moved checkout carries on);
 *  - `providerEngine`: the client for a resource's engine, from src/engine/client.ts (no global DOCKER_HOST);
 *  - `runIn`: a command in a container, through src/engine/exec.ts.
 *
 * Stacks keep the providers they were deployed with and run them for `delete` and `refresh`, so the
 * compiled modules keep what those call: audit.js `auditContainer`, engine/secretFile.js
 * `removeSecretFile`, swarm/deploy.js `engineAt`, `findService`, `liveView`, `runningTask`,
 * `removeService` (test/unit/providerRuntime.test.ts checks them).
 */
import type Dockerode from "dockerode";

/** The compiled connection helper. */
export const CLIENT_MODULE = "src/engine/client.js";
/** The compiled exec helper. */
export const EXEC_MODULE = "src/engine/exec.js";

/**
 * The compiled project module `relative` (e.g. "src/audit/audit.js"), found when the provider runs:
 * Pulumi starts provider processes in the program's directory (dist/, Pulumi.yaml's `main`) wherever
 * the checkout lives, so no path is stored in the state and a moved or re-cloned checkout carries on.
 */
export function projectModule(relative: string): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require("node:fs"), path = require("node:path");
  for (let dir: string = process.cwd(); ; dir = path.dirname(dir)) {
    for (const candidate of [path.join(dir, relative), path.join(dir, "dist", relative)]) {
      if (fs.existsSync(candidate)) return candidate;
    }
    if (fs.existsSync(path.join(dir, "Pulumi.yaml")) || path.dirname(dir) === dir) {
      throw new Error(`${relative} is not compiled in the project of ${process.cwd()}: run 'npm run build'`);
    }
  }
}

/** The Pulumi project's directory (the nearest with Pulumi.yaml above the provider's directory): fleet's store is under it. */
export function projectRoot(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require("node:fs"), path = require("node:path");
  for (let dir: string = process.cwd(); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Pulumi.yaml above ${process.cwd()}: the provider runs outside the project`);
  }
}

/** The client for the engine a resource lives on ("" or undefined: DOCKER_HOST, else the local socket). */
export function providerEngine(host: string | undefined): Dockerode {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(projectModule(CLIENT_MODULE)).engineAt(host || undefined);
}

/**
 * Runs a command in a container; its exit code and what it printed (stdout and stderr as they came,
 * trimmed). The time limit is generous: it bounds a hung exec, not a slow reload.
 */
export async function runIn(container: Dockerode.Container, cmd: string[], timeoutMs = 300_000): Promise<{ code: number; output: string }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const result = await require(projectModule(EXEC_MODULE)).execIn(container, cmd, timeoutMs);
  return { code: result.exitCode, output: result.output.trim() };
}
