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
}

interface PidsLimitState {
  containerId: string;
  pidsLimit: number;
}

async function applyLimit(state: PidsLimitState): Promise<PidsLimitState> {
  // required here, not at the top: the provider is serialized into the Pulumi state
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Dockerode = require("dockerode");
  const container = new Dockerode().getContainer(state.containerId);
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
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Dockerode = require("dockerode");
    try {
      const info = await new Dockerode().getContainer(props.containerId).inspect();
      return { id, props: { containerId: props.containerId, pidsLimit: info.HostConfig.PidsLimit ?? 0 } };
    } catch {
      return { id: "", props: {} }; // the container is gone
    }
  },
  async delete() {
    // nothing to undo: the limit goes away with the container
  },
};

export class PidsLimit extends pulumi.dynamic.Resource {
  declare readonly containerId: pulumi.Output<string>;
  declare readonly pidsLimit: pulumi.Output<number>;

  constructor(name: string, args: PidsLimitInputs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { ...args }, opts, "hardened-fleet", "PidsLimit");
  }
}
