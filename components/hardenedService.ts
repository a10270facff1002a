/**
 * hardened-fleet:service:HardenedService — one customer in one environment: its own network, its
 * data volume (kept on delete), generated secrets, the hardened container, its PIDs limit and the
 * wait until it is healthy (ContainerGate).
 *
 * The network needs only the customer's identity, so it is created at once, while the rest of the
 * settings may still be on their way (a customer stack reads its environment's through a
 * StackReference): the docker provider spends two seconds creating a network, and a new customer's
 * deployment no longer waits for that read first.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { REPLACE_ON_CHANGES, toContainerArgs } from "./containerArgs";
import { serviceUrl, type ServiceIdentity, type ServiceSpec } from "../src/hardening/serviceSpec";
import { ContainerGate, DynamicProvider } from "./containerGate";

export interface ServiceSettings {
  spec: ServiceSpec;
  /** production protects the data volume from `pulumi destroy` as well */
  protectData: boolean;
}

export interface HardenedServiceArgs {
  /** names and identity labels: enough for the network */
  identity: ServiceIdentity;
  /** every other setting, or the promise of them; a rejected promise fails the deployment with its error */
  settings: ServiceSettings | Promise<ServiceSettings>;
  /** the engine the docker provider deploys to (docker:host or DOCKER_HOST); the container gate uses the same */
  dockerHost?: string;
}

export class HardenedService extends pulumi.ComponentResource {
  readonly url: pulumi.Output<string>;
  readonly containerId: pulumi.Output<string>;
  readonly containerName: string;
  readonly networkName: string;
  readonly dataVolumeName: string;

  constructor(name: string, args: HardenedServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hardened-fleet:service:HardenedService", name, {}, opts);
    const { identity } = args;
    const labels = Object.entries(identity.identityLabels).map(([label, value]) => ({ label, value }));
    // The network and the volume outlive every plan change, profile change and update: their labels
    // say only whose they are, and a label change never replaces them (Docker cannot relabel in place).
    const keep = { ignoreChanges: ["labels"] };

    const network = new docker.Network(`${name}-net`, {
      name: identity.networkName,
      driver: "bridge",
      // one customer per network: nothing else to talk to
      options: { "com.docker.network.bridge.enable_icc": "false" },
      labels,
    }, { parent: this, ...keep });

    const secretKey = new random.RandomPassword(`${name}-secret-key`, { length: 48, special: false }, { parent: this });

    const deployed = Promise.resolve(args.settings).then(({ spec, protectData }) => {
      if (spec.networkName !== identity.networkName || spec.dataVolumeName !== identity.dataVolumeName || spec.containerName !== identity.containerName) {
        throw new Error(`HardenedService ${name}: the settings are for ${spec.containerName}, not ${identity.containerName}`);
      }
      return this.deploy(name, spec, protectData, network, secretKey, labels, args.dockerHost ?? "");
    });
    deployed.catch(() => { /* reported through the outputs below, which fail the deployment */ });

    this.url = pulumi.output(deployed.then((d) => d.url));
    this.containerId = pulumi.output(deployed.then((d) => d.containerId));
    this.containerName = identity.containerName;
    this.networkName = identity.networkName;
    this.dataVolumeName = identity.dataVolumeName;
    this.registerOutputs({
      url: this.url,
      containerId: this.containerId,
      containerName: this.containerName,
      networkName: this.networkName,
      dataVolumeName: this.dataVolumeName,
    });
  }

  /** The volume, the container and its PIDs limit, once the settings are known. */
  private deploy(name: string, spec: ServiceSpec, protectData: boolean, network: docker.Network, secretKey: random.RandomPassword,
    labels: { label: string; value: string }[], dockerHost: string): { url: string; containerId: pulumi.Output<string> } {
    const volume = new docker.Volume(`${name}-data`, { name: spec.dataVolumeName, labels }, {
      parent: this,
      ignoreChanges: ["labels"],
      retainOnDelete: true,
      protect: protectData,
    });

    // The engine starts a provider's plugin as it registers it, holding back the resources registered
    // after it meanwhile. Registered once the volume exists, the start overlaps the network's
    // creation instead of delaying it, and is done before the container is healthy.
    const dynamicProvider = new DynamicProvider(`${name}-dynamic`, { parent: this, dependsOn: [volume] });

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

    // the PIDs limit, then the wait for healthy: the deployment fails when the container never is
    new ContainerGate(`${name}-pids`, { containerId: container.id, pidsLimit: spec.pidsLimit, healthTimeoutSeconds: spec.healthTimeoutSeconds, dockerHost },
      { parent: this, provider: dynamicProvider });
    return { url: serviceUrl(spec), containerId: container.id };
  }
}
