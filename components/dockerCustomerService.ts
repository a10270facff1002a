/**
 * hardened-fleet:service:DockerCustomerService — one customer on one engine (target: docker): its own
 * bridge network (shared with nothing but the environment's edge proxy), its data volume (kept on
 * delete), its secret key (a file the app reads, never an environment variable), the hardened
 * container, its gate and its route in the edge proxy. Shared pieces: hardenedService.ts.
 *
 * Updates are start-first. A container is named after its spec (`hf-<env>-<customer>-<slot>`,
 * containerSlot in src/hardening/serviceSpec.ts), and so is its Pulumi resource: a changed spec is a
 * new container beside the running one. Its gate waits until it is healthy and passes the audit; only
 * then does the route send traffic to it, and the old container, no longer in the program, is deleted
 * at the end of the deployment. When the new one fails, the deployment stops before that: the old one
 * keeps serving, and deploying the old spec again finds it still there (nothing to start).
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type * as random from "@pulumi/random";
import { REPLACE_ON_CHANGES, toContainerArgs } from "./containerArgs";
import { ContainerGate } from "./containerGate";
import { CustomerParts, serviceOptions, serviceOutputs, type CustomerServiceArgs, type Deployed, type HardenedService, type ServiceSettings } from "./hardenedService";
import { SecretFile } from "./secretFile";
import { LABEL_ROLE, ROLE_SECRETS } from "../src/hardening/names";

export type DockerCustomerServiceArgs = CustomerServiceArgs<ServiceSettings>;

export class DockerCustomerService extends pulumi.ComponentResource implements HardenedService {
  declare readonly url: pulumi.Output<string>;
  declare readonly containerId: pulumi.Output<string>;
  declare readonly containerName: pulumi.Output<string>;
  declare readonly networkName: string;
  declare readonly dataVolumeName: string;

  constructor(name: string, args: DockerCustomerServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hardened-fleet:service:DockerCustomerService", name, {}, serviceOptions(opts));
    const parts = new CustomerParts(this, name, args.identity, opts);
    // `-network`: the `-net` of before the edge proxy allowed no traffic between its members, so no
    // proxy could reach the app; an existing stack gets this one beside it and loses the old at the end
    const network = parts.network(`${name}-network`, { name: args.identity.networkName, driver: "bridge" });
    const secretKey = parts.secretKey();
    const deployed = parts.settle(args.settings).then((settings) => this.deploy(parts, settings, network, secretKey, args.dockerHost ?? ""));

    const outputs = serviceOutputs(deployed, args.identity.networkName, args.identity.dataVolumeName);
    Object.assign(this, outputs);
    this.registerOutputs(outputs);
  }

  /** The volume, the container, its gate and its route, once the settings are known. */
  private deploy(parts: CustomerParts, settings: ServiceSettings, network: docker.Network, secretKey: random.RandomPassword,
    dockerHost: string): Deployed {
    const { name } = parts;
    const { spec, protectData, route } = settings;
    // like the network, it outlives every plan change, profile change and update
    const volume = new docker.Volume(`${name}-data`, { name: spec.dataVolumeName, labels: parts.labels }, parts.child({
      ignoreChanges: ["labels"],
      retainOnDelete: true,
      protect: protectData,
    }));

    // The engine starts a provider's plugin as it registers it, holding back the resources registered
    // after it meanwhile. Registered once the volume exists, the start overlaps the network's
    // creation instead of delaying it, and is done before the container is healthy.
    const dynamicProvider = parts.dynamicProvider([volume]);

    // the slot (the end of the container's name) is the resource's name too: see the top of this file
    const slot = spec.containerName.slice(spec.containerName.lastIndexOf("-") + 1);
    const base = toContainerArgs(spec);
    // the secret key as a file on a volume of its own, written before the container exists (the app
    // reads it at start), never an environment variable: see components/secretFile.ts
    if (!spec.secretFile) throw new pulumi.ResourceError(`HardenedService ${name}: the spec has no secret key file`, this);
    const keyFile = new SecretFile(`${name}-secret-file`, {
      file: spec.secretFile,
      content: pulumi.secret(secretKey.result),
      image: spec.image,
      labels: { ...spec.identityLabels, [LABEL_ROLE]: ROLE_SECRETS },
      dockerHost,
    }, parts.child({ provider: dynamicProvider }));
    const container = new docker.Container(`${name}-container-${slot}`, {
      ...base,
      networkMode: network.name,
      networksAdvanced: [{ name: network.name }],
      volumes: [
        { volumeName: volume.name, containerPath: spec.data.target },
        { volumeName: keyFile.file.apply((f) => f.volume), containerPath: spec.secretFile.dir, readOnly: true },
      ],
    }, parts.child({ replaceOnChanges: REPLACE_ON_CHANGES }));

    // the PIDs limit, the wait for healthy and the audit: the deployment fails when the container fails them
    const gate = new ContainerGate(`${name}-gate-${slot}`, {
      containerId: container.id, pidsLimit: spec.pidsLimit, healthTimeoutSeconds: spec.healthTimeoutSeconds, dockerHost,
    }, parts.child({ provider: dynamicProvider }));

    // traffic switches to the new container only now, and the old one is deleted after this
    parts.route(route, network, gate.containerId.apply(() => spec.containerName), dockerHost, dynamicProvider);
    return { url: settings.url, containerId: container.id, containerName: spec.containerName };
  }
}
