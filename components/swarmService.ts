/**
 * SwarmService (dynamic resource type hardened-fleet:SwarmService, like the gate's hardened-fleet:PidsLimit): one customer's Docker Swarm service,
 * created and updated through the manager's Engine API by src/swarm/deploy.ts.
 *
 * Why not the docker provider's docker.Service: it has no input for the PIDs limit (the Engine API
 * has `Resources.Limits.Pids`), which every hardened container must have. The spec comes in whole
 * (src/swarm/serviceSpec.ts), so `pulumi preview` shows exactly what changes.
 *
 * The provider is serialized into the Pulumi state and runs in its own process: it loads the
 * compiled deploy module, found at run time (like the container gate's audit).
 */
import * as pulumi from "@pulumi/pulumi";
import { projectModule } from "./containerGate";

/** The compiled src/swarm/deploy.js, which the provider process finds at run time (no path in the state). */
export const SWARM_DEPLOY_MODULE = "src/swarm/deploy.js";

export interface SwarmServiceInputs {
  managerHost: pulumi.Input<string>;
  nodeHosts: pulumi.Input<Record<string, string>>;
  spec: pulumi.Input<Record<string, unknown>>;
  /** username, password, serveraddress for pulls on every node; a Pulumi secret */
  registryAuth?: pulumi.Input<{ username: string; password: string; serveraddress: string } | undefined>;
  timeoutSeconds: pulumi.Input<number>;
}

interface State {
  managerHost: string;
  nodeHosts: Record<string, string>;
  spec: Record<string, unknown> & { Name: string };
  registryAuth?: { username: string; password: string; serveraddress: string };
  timeoutSeconds: number;
  /** an absolute path, in the state of stacks made before the module was found at run time: ignored */
  module?: string;
  serviceId?: string;
  node?: string;
  containerId?: string;
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: State) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const deployed = await require(projectModule(SWARM_DEPLOY_MODULE)).deployService(inputs);
    return { id: deployed.serviceId, outs: { ...inputs, ...deployed } };
  },
  async diff(_id: string, olds: State, news: State) {
    // a spec not known yet (its network or secret is being made) is an update, not a replacement: a
    // replacement deletes the service first
    const known = typeof news.spec?.Name === "string";
    const replaces = (known && olds.spec.Name !== news.spec.Name) || olds.managerHost !== news.managerHost ? ["spec"] : [];
    const changed = JSON.stringify(olds.spec) !== JSON.stringify(news.spec) || JSON.stringify(olds.nodeHosts) !== JSON.stringify(news.nodeHosts);
    // the live service too, not only the stored spec: a `fleet move` killed after it scaled the
    // service to 0, or a `docker service update` by hand, is repaired by the next deployment
    let drift: string[] = [];
    if (!changed && replaces.length === 0 && known) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      drift = await require(projectModule(SWARM_DEPLOY_MODULE)).serviceDrift(news.managerHost, news.spec).catch(() => []);
    }
    return { changes: changed || replaces.length > 0 || drift.length > 0, replaces, deleteBeforeReplace: true };
  },
  async update(_id: string, _olds: State, news: State) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const deployed = await require(projectModule(SWARM_DEPLOY_MODULE)).deployService(news);
    return { outs: { ...news, ...deployed } };
  },
  async read(id: string, props: State) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { engineAt, findService, liveView, runningTask } = require(projectModule(SWARM_DEPLOY_MODULE));
    const service = await findService(engineAt(props.managerHost), props.spec.Name);
    if (!service) return { id: "", props: {} };
    const task = await runningTask(engineAt(props.managerHost), props.spec.Name);
    // what runs: its replicas, image and placement, and whether its spec is still fleet's
    return { id, props: { ...props, spec: liveView(props.spec, service.Spec), node: task?.node ?? props.node, containerId: task?.containerId ?? props.containerId } };
  },
  async delete(_id: string, props: State) {
    // the data volume stays on its node: Swarm never removes a service's volumes
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    await require(projectModule(SWARM_DEPLOY_MODULE)).removeService(props.managerHost, props.spec.Name);
  },
};

export class SwarmService extends pulumi.dynamic.Resource {
  declare readonly serviceId: pulumi.Output<string>;
  declare readonly node: pulumi.Output<string>;
  declare readonly containerId: pulumi.Output<string>;

  constructor(name: string, args: SwarmServiceInputs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { serviceId: undefined, node: undefined, containerId: undefined, ...args },
      { additionalSecretOutputs: ["registryAuth"], ...opts }, "hardened-fleet", "SwarmService");
  }
}
