/**
 * ContainerGate (Pulumi type hardened-fleet:PidsLimit, kept from its first version so existing stacks
 * carry on): what `docker.Container` cannot do for a container it has just started.
 *
 *  - It sets the PIDs limit through the Docker Engine API (the container update endpoint): the
 *    docker provider has no input for it. Its inputs include the container ID, so a replaced
 *    container gets the limit again, at once; `read` reports the live value, so `pulumi refresh`
 *    shows drift.
 *  - It waits until the container is healthy, polling ten times a second, and fails the deployment
 *    when it turns unhealthy, stops, or is not healthy within the timeout, with the healthcheck's
 *    last output. The docker provider's own wait polls once a second, so the container is started
 *    without it (`wait: false`, components/containerArgs.ts) and a deployment ends as soon as the
 *    container is healthy.
 *  - Then it runs the hardening audit (src/audit) on it: a container that fails a check gets no traffic.
 *  - A container that fails is stopped, so it neither restarts in a loop nor takes traffic; the one it
 *    was to replace keeps serving. A later deployment of the same spec starts it again and retries.
 */
import * as pulumi from "@pulumi/pulumi";
import { projectModule, providerEngine } from "./providerRuntime";

// kept for the modules that import it from here (components/swarmService.ts)
export { projectModule };

/** The compiled audit, which the provider process loads to audit a new container. */
export const AUDIT_MODULE = "src/audit/audit.js";

export interface ContainerGateInputs {
  containerId: pulumi.Input<string>;
  pidsLimit: pulumi.Input<number>;
  /** seconds a new container may take to be healthy before the deployment fails */
  healthTimeoutSeconds: pulumi.Input<number>;
  /** the engine the container runs on ("" for the local socket): the same one the docker provider uses */
  dockerHost: pulumi.Input<string>;
}

interface GateState {
  containerId: string;
  pidsLimit: number;
  healthTimeoutSeconds?: number;
  dockerHost?: string;
  /** an absolute path, in the state of stacks made before it was found at run time: ignored */
  auditModule?: string;
}

async function applyLimit(state: GateState): Promise<GateState> {
  const container = providerEngine(state.dockerHost).getContainer(state.containerId);
  await container.update({ PidsLimit: state.pidsLimit });
  const info = await container.inspect();
  const live = info.HostConfig.PidsLimit;
  if (live !== state.pidsLimit) {
    throw new Error(`container ${state.containerId}: PidsLimit is ${live} after update, expected ${state.pidsLimit}`);
  }
  return state;
}

/** Waits until the container is healthy; fails when it turns unhealthy, stops or runs out of time. */
async function waitHealthy(state: GateState): Promise<void> {
  const container = providerEngine(state.dockerHost).getContainer(state.containerId);
  const timeout = state.healthTimeoutSeconds ?? 120;
  const deadline = Date.now() + timeout * 1000;
  for (;;) {
    const info = await container.inspect();
    const health = info.State.Health;
    const said = () => (health?.Log ?? []).slice(-1).map((l: { Output?: string }) => (l.Output ?? "").trim().slice(0, 300)).join("");
    if (!health) throw new Error(`container ${info.Name.replace(/^\//, "")} has no healthcheck: a hardened image must have one`);
    if (health.Status === "healthy") return;
    if (!info.State.Running) {
      throw new Error(`container ${info.Name.replace(/^\//, "")} stopped (exit ${info.State.ExitCode}) before it was healthy; last healthcheck: ${said() || "none"}`);
    }
    if (health.Status === "unhealthy") {
      throw new Error(`container ${info.Name.replace(/^\//, "")} is unhealthy: its healthcheck failed ${health.FailingStreak} times; last output: ${said() || "none"}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`container ${info.Name.replace(/^\//, "")} did not become healthy within ${timeout}s (still ${health.Status}); last healthcheck: ${said() || "none"}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The hardening audit of the running container; fails with every failing check. */
async function audit(state: GateState): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { auditContainer, failedChecks } = require(projectModule(AUDIT_MODULE));
  const result = await auditContainer(providerEngine(state.dockerHost), state.containerId);
  if (!result.ok) {
    throw new Error(`container ${result.container} failed the hardening audit, so it gets no traffic: ${failedChecks(result.checks).join("; ")}`);
  }
}

/** A retried deployment starts the container a failed one stopped. */
async function ensureRunning(state: GateState): Promise<void> {
  const container = providerEngine(state.dockerHost).getContainer(state.containerId);
  const info = await container.inspect();
  if (!info.State.Running) await container.start();
}

async function stopQuietly(state: GateState): Promise<void> {
  try {
    await providerEngine(state.dockerHost).getContainer(state.containerId).stop({ t: 5 });
  } catch { /* gone or stopped already: the error that matters is the one being reported */ }
}

const provider: pulumi.dynamic.ResourceProvider = {
  // a new container (this resource is replaced with every new container ID)
  async create(inputs: GateState) {
    await ensureRunning(inputs);
    const outs = await applyLimit(inputs);
    try {
      await waitHealthy(inputs);
      await audit(inputs);
    } catch (err) {
      await stopQuietly(inputs);
      throw err;
    }
    return { id: `${inputs.containerId}/pids`, outs };
  },
  async diff(_id: string, olds: GateState, news: GateState) {
    const replaces = olds.containerId !== news.containerId ? ["containerId"] : [];
    return {
      changes: replaces.length > 0 || olds.pidsLimit !== news.pidsLimit,
      replaces,
      deleteBeforeReplace: false,
    };
  },
  async update(_id: string, _olds: GateState, news: GateState) {
    return { outs: await applyLimit(news) };
  },
  async read(id: string, props: GateState) {
    try {
      const info = await providerEngine(props.dockerHost).getContainer(props.containerId).inspect();
      return { id, props: { ...props, pidsLimit: info.HostConfig.PidsLimit ?? 0 } };
    } catch {
      return { id: "", props: {} }; // the container is gone
    }
  },
  async delete() {
    // nothing to undo: the limit goes away with the container
  },
};

/**
 * The provider process of dynamic resources (the Node.js `pulumi-nodejs` plugin), declared
 * explicitly so that the engine starts it early, beside the network's creation, instead of when the
 * first ContainerGate is registered, after its container has started.
 */
export class DynamicProvider extends pulumi.ProviderResource {
  constructor(name: string, opts?: pulumi.ResourceOptions) {
    super("pulumi-nodejs", name, {}, opts);
  }
}

export class ContainerGate extends pulumi.dynamic.Resource {
  declare readonly containerId: pulumi.Output<string>;
  declare readonly pidsLimit: pulumi.Output<number>;

  constructor(name: string, args: ContainerGateInputs, opts?: pulumi.CustomResourceOptions) {
    // type token hardened-fleet:PidsLimit: the name of its first version, in every existing stack's state
    super(provider, name, { ...args }, opts, "hardened-fleet", "PidsLimit");
  }
}
