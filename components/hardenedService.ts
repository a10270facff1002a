/**
 * hardened-fleet:service:HardenedService — one customer in one environment: its own network, its
 * data volume (kept on delete), generated secrets, the hardened container and its PIDs limit.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { REPLACE_ON_CHANGES, toContainerArgs } from "./containerArgs";
import { serviceUrl, type ServiceSpec } from "../src/hardening/serviceSpec";
import { PidsLimit } from "./pidsLimit";

export interface HardenedServiceArgs {
  spec: ServiceSpec;
  /** production protects the data volume from `pulumi destroy` as well */
  protectData: boolean;
  /** the engine the docker provider deploys to (docker:host or DOCKER_HOST); the PidsLimit resource uses the same */
  dockerHost?: string;
}

export class HardenedService extends pulumi.ComponentResource {
  readonly url: string;
  readonly containerId: pulumi.Output<string>;
  readonly containerName: string;
  readonly networkName: string;
  readonly dataVolumeName: string;

  constructor(name: string, args: HardenedServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hardened-fleet:service:HardenedService", name, {}, opts);
    const { spec } = args;
    const identity = Object.entries(spec.identityLabels).map(([label, value]) => ({ label, value }));
    // The network and the volume outlive every plan change, profile change and update: their labels
    // say only whose they are, and a label change never replaces them (Docker cannot relabel in place).
    const keep = { ignoreChanges: ["labels"] };

    const secretKey = new random.RandomPassword(`${name}-secret-key`, { length: 48, special: false }, { parent: this });

    const network = new docker.Network(`${name}-net`, {
      name: spec.networkName,
      driver: "bridge",
      // one customer per network: nothing else to talk to
      options: { "com.docker.network.bridge.enable_icc": "false" },
      labels: identity,
    }, { parent: this, ...keep });

    const volume = new docker.Volume(`${name}-data`, { name: spec.dataVolumeName, labels: identity }, {
      parent: this,
      ...keep,
      retainOnDelete: true,
      protect: args.protectData,
    });

    const base = toContainerArgs(spec);
    const container = new docker.Container(`${name}-container`, {
      ...base,
      networkMode: network.name,
      networksAdvanced: [{ name: network.name }],
      volumes: [{ volumeName: volume.name, containerPath: spec.data.target }],
      envs: pulumi.secret(pulumi.all([secretKey.result]).apply(([key]) => [...base.envs, `APP_SECRET_KEY=${key}`])),
    }, {
      parent: this,
      replaceOnChanges: REPLACE_ON_CHANGES,
      // fixed name and host port: the old container must go before the new one starts
      deleteBeforeReplace: true,
      additionalSecretOutputs: ["envs"],
    });

    new PidsLimit(`${name}-pids`, { containerId: container.id, pidsLimit: spec.pidsLimit, dockerHost: args.dockerHost ?? "" }, { parent: this });

    this.url = serviceUrl(spec);
    this.containerId = container.id;
    this.containerName = spec.containerName;
    this.networkName = spec.networkName;
    this.dataVolumeName = spec.dataVolumeName;
    this.registerOutputs({
      url: this.url,
      containerId: this.containerId,
      containerName: this.containerName,
      networkName: this.networkName,
      dataVolumeName: this.dataVolumeName,
    });
  }
}
