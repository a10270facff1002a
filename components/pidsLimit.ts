/**
 * hardened-fleet:docker:PidsLimit — sets a container's PIDs limit through the Docker Engine API.
 *
 * `docker.Container` has no input for it, so this dynamic resource calls the container update
 * endpoint (dockerode). Its inputs include the container ID, so a replaced container gets the
 * limit again; `read` reports the live value, so `pulumi refresh` shows drift.
 */
import * as pulumi from "@pulumi/pulumi";

export interface PidsLimitInputs {
  containerId: pulumi.Input<string>;
  pidsLimit: pulumi.Input<number>;
  /** the engine the container runs on ("" for the local socket): the same one the docker provider uses */
  dockerHost: pulumi.Input<string>;
}

interface PidsLimitState {
  containerId: string;
  pidsLimit: number;
  dockerHost?: string;
}

/**
 * A client for the engine the container runs on. Self-contained: the provider is serialized into the
 * Pulumi state and runs in its own process, so it cannot import project modules. docker-modem reads
 * DOCKER_HOST (unix://, tcp://, ssh://) the way the docker provider and fleet's connection.ts do.
 */
function engineAt(host: string | undefined) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Dockerode = require("dockerode");
  if (host) process.env.DOCKER_HOST = host;
  return new Dockerode();
}

async function applyLimit(state: PidsLimitState): Promise<PidsLimitState> {
  const container = engineAt(state.dockerHost || undefined).getContainer(state.containerId);
  await container.update({ PidsLimit: state.pidsLimit });
  const info = await container.inspect();
  const live = info.HostConfig.PidsLimit;
  if (live !== state.pidsLimit) {
    throw new Error(`container ${state.containerId}: PidsLimit is ${live} after update, expected ${state.pidsLimit}`);
  }
  return state;
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: PidsLimitState) {
    return { id: `${inputs.containerId}/pids`, outs: await applyLimit(inputs) };
  },
  async diff(_id: string, olds: PidsLimitState, news: PidsLimitState) {
    const replaces = olds.containerId !== news.containerId ? ["containerId"] : [];
    return {
      changes: replaces.length > 0 || olds.pidsLimit !== news.pidsLimit,
      replaces,
      deleteBeforeReplace: false,
    };
  },
  async update(_id: string, _olds: PidsLimitState, news: PidsLimitState) {
    return { outs: await applyLimit(news) };
  },
  async read(id: string, props: PidsLimitState) {
    try {
      const info = await engineAt(props.dockerHost || undefined).getContainer(props.containerId).inspect();
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
 * explicitly so that the engine starts it when the program starts, beside everything else, instead
 * of when the first PidsLimit is registered, after its container is healthy: that start is the last
 * thing standing between a healthy container and the end of a deployment.
 */
export class DynamicProvider extends pulumi.ProviderResource {
  constructor(name: string, opts?: pulumi.ResourceOptions) {
    super("pulumi-nodejs", name, {}, opts);
  }
}

export class PidsLimit extends pulumi.dynamic.Resource {
  declare readonly containerId: pulumi.Output<string>;
  declare readonly pidsLimit: pulumi.Output<number>;

  constructor(name: string, args: PidsLimitInputs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args }, opts, "hardened-fleet", "PidsLimit");
  }
}
