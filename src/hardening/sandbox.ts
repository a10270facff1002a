/**
 * Sandboxed plans (docs/sandbox.md): a plan with `sandbox: gvisor` runs each of its customers in a
 * user-space kernel of its own, gVisor's `runsc`, which the set-up builds and registers with every
 * engine as a named runtime (scripts/ensure-runsc.sh). Other plans keep the engine's default, runc.
 * What the two differ in, for everything fleet makes or checks, is here. Pure.
 */
import type { Sandbox } from "../config/schema";

/** The runtime name each sandbox is registered under (daemon.json `runtimes`); `none` is the engine's default. */
export const SANDBOX_RUNTIMES: Readonly<Record<Exclude<Sandbox, "none">, string>> = { gvisor: "runsc" };
/** The engine's default runtime: what a container made without a runtime runs under. */
export const DEFAULT_RUNTIME = "runc";

/** On a sandboxed customer's container (and Swarm service): its sandbox. Absent on the others, so their specs are as before. */
export const LABEL_SANDBOX = "io.hardened-fleet.sandbox";

/**
 * Host tasks of the sandbox itself (gVisor's Sentry and gofer and their Go runtime threads: about 26
 * idle, 45 after a few minutes of healthchecks, measured on runsc with platform systrap), counted by
 * the container's PIDs cgroup beside the app's (docs/sandbox.md).
 */
export const SANDBOX_PIDS_OVERHEAD = 64;
/** Host tasks per process the app starts in a sandbox (its task and its systrap stub); its threads are the Sentry's, not the host's. */
export const SANDBOX_TASKS_PER_PROCESS = 2;

/** Whether a container's runtime (HostConfig.Runtime) is one of the sandboxes. */
export function isSandboxRuntime(runtime: string | undefined): boolean {
  return runtime !== undefined && Object.values(SANDBOX_RUNTIMES).includes(runtime);
}

/** The runtime a plan's customers run under: undefined for the engine's default. */
export function sandboxRuntime(sandbox: Sandbox): string | undefined {
  return sandbox === "none" ? undefined : SANDBOX_RUNTIMES[sandbox];
}

/** The runtime a container or task should run under, from its labels (what its deployment asked for). */
export function expectedRuntime(labels: Record<string, string> | undefined): string {
  const sandbox = labels?.[LABEL_SANDBOX];
  // own keys only: a label 'toString' is no sandbox
  return (sandbox !== undefined && Object.hasOwn(SANDBOX_RUNTIMES, sandbox) && sandboxRuntime(sandbox as Sandbox)) || DEFAULT_RUNTIME;
}

/**
 * Why an engine that has `runtimes` (docker info's Runtimes) cannot start a container of a plan of
 * `sandbox`, which names its runtime (undefined: it can, or the plan takes the engine's default). Pure.
 */
export function missingRuntime(sandbox: Sandbox, runtimes: string[]): string | undefined {
  const wanted = sandboxRuntime(sandbox);
  if (wanted === undefined || runtimes.includes(wanted)) return undefined;
  return `has no runtime ${wanted} (its runtimes: ${runtimes.join(", ") || "none listed"})`;
}

/**
 * Why a Swarm node marked `marked` (swarm.nodes[].sandbox) whose engine's default runtime is
 * `defaultRuntime` would run the customers placed on it other than their plans say (a service runs
 * under its node's default): a sandbox node must default to its sandbox's runtime, and any other
 * node to one that is no sandbox (undefined: it fits). Pure.
 */
export function defaultRuntimeMismatch(marked: Sandbox, defaultRuntime: string): string | undefined {
  const wanted = sandboxRuntime(marked);
  if (wanted !== undefined) {
    return defaultRuntime === wanted ? undefined
      : `is marked sandbox: ${marked} in swarm.nodes, but its engine's default runtime is ${defaultRuntime}, not ${wanted}: its customers would not be sandboxed`;
  }
  return isSandboxRuntime(defaultRuntime)
    ? `is not a sandbox node in swarm.nodes, but its engine's default runtime is ${defaultRuntime}: its customers would run in a sandbox their plan does not name`
    : undefined;
}

/** The runtime a container runs under, as its engine reports it (HostConfig.Runtime; empty: the default). */
export function runtimeOf(hostConfig: { Runtime?: string }): string {
  return hostConfig.Runtime || DEFAULT_RUNTIME;
}

/**
 * The PIDs cgroup limit of a plan's container. Under runc: the plan's `pids`, the app's processes and
 * threads. In a sandbox the app's `pids` is its nproc ulimit (sandboxUlimits), and the cgroup, which
 * counts host tasks, is the backstop: room for that many processes at their host cost, plus the sandbox's own.
 */
export function cgroupPidsLimit(pids: number, sandbox: Sandbox): number {
  return sandbox === "none" ? pids : SANDBOX_TASKS_PER_PROCESS * pids + SANDBOX_PIDS_OVERHEAD;
}

/**
 * The ulimits a sandbox adds: nproc, the plan's `pids`. Under runc the kernel counts RLIMIT_NPROC per
 * host UID, shared by every customer (all run as 1000), so fleet never sets it there; in a sandbox
 * the customer's own kernel counts it, for that customer alone, processes and threads alike. Pure.
 */
export function sandboxUlimits(pids: number, sandbox: Sandbox): { name: string; soft: number; hard: number }[] {
  return sandbox === "none" ? [] : [{ name: "nproc", soft: pids, hard: pids }];
}
