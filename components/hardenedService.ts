/**
 * hardened-fleet:service:HardenedService — one customer in one environment: its own network (shared
 * with nothing but the environment's edge proxy), its data volume (kept on delete), generated
 * secrets, the hardened container, its gate and its route in the edge proxy.
 *
 * Updates are start-first. A container is named after its spec (`hf-<env>-<customer>-<slot>`,
 * containerSlot in src/hardening/serviceSpec.ts), and so is its Pulumi resource: a changed spec is a
 * new container beside the running one. Its gate waits until it is healthy and passes the audit; only
 * then does the route send traffic to it, and the old container, no longer in the program, is deleted
 * at the end of the deployment. When the new one fails, the deployment stops before that: the old one
 * keeps serving, and deploying the old spec again finds it still there (nothing to start).
 *
 * The network needs only the customer's identity, so it is created at once, while the rest of the
 * settings may still be on their way (a customer stack reads its environment's through a
 * StackReference): the docker provider spends two seconds creating a network.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { REPLACE_ON_CHANGES, toContainerArgs } from "./containerArgs";
import type { ServiceIdentity, ServiceSpec } from "../src/hardening/serviceSpec";
import { ContainerGate, DynamicProvider } from "./containerGate";
import { EdgeRoute } from "./edgeLinks";

/** Where the edge proxy sends this customer's traffic. */
export interface ServiceRoute {
  /** the proxy container (hf-<environment>-<edge.name>) */
  proxy: string;
  routesDir: string;
  fileName: string;
  /** the route file, sending the customer's hostname to the container of the spec */
  fileText: string;
  reload: string[];
}

export interface ServiceSettings {
  spec: ServiceSpec;
  /** production protects the data volume from `pulumi destroy` as well */
  protectData: boolean;
  route: ServiceRoute;
  /** https://<customer>.<edge.domain> */
  url: string;
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
  readonly containerName: pulumi.Output<string>;
  readonly networkName: string;
  readonly dataVolumeName: string;

  constructor(name: string, args: HardenedServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hardened-fleet:service:HardenedService", name, {}, opts);
    const { identity } = args;
    const labels = Object.entries(identity.identityLabels).map(([label, value]) => ({ label, value }));
    // The network and the volume outlive every plan change, profile change and update: their labels
    // say only whose they are, and a label change never replaces them (Docker cannot relabel in place).
    const keep = { ignoreChanges: ["labels"] };

    // `-network`: the `-net` of before the edge proxy allowed no traffic between its members, so no
    // proxy could reach the app; an existing stack gets this one beside it and loses the old at the end
    const network = new docker.Network(`${name}-network`, {
      name: identity.networkName,
      driver: "bridge",
      labels,
    }, { parent: this, ...keep });

    const secretKey = new random.RandomPassword(`${name}-secret-key`, { length: 48, special: false }, { parent: this });

    const deployed = Promise.resolve(args.settings).then((settings) => {
      const { spec } = settings;
      if (spec.networkName !== identity.networkName || spec.dataVolumeName !== identity.dataVolumeName || !spec.containerName.startsWith(`${identity.containerPrefix}-`)) {
        throw new Error(`HardenedService ${name}: the settings are for ${spec.containerName}, not ${identity.containerPrefix}`);
      }
      return this.deploy(name, settings, network, secretKey, labels, args.dockerHost ?? "");
    });
    deployed.catch(() => { /* reported through the outputs below, which fail the deployment */ });

    this.url = pulumi.output(deployed.then((d) => d.url));
    this.containerId = pulumi.output(deployed.then((d) => d.containerId));
    this.containerName = pulumi.output(deployed.then((d) => d.containerName));
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

  /** The volume, the container, its gate and its route, once the settings are known. */
  private deploy(name: string, settings: ServiceSettings, network: docker.Network, secretKey: random.RandomPassword,
    labels: { label: string; value: string }[], dockerHost: string): { url: string; containerId: pulumi.Output<string>; containerName: string } {
    const { spec, protectData, route } = settings;
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

    // the slot (the end of the container's name) is the resource's name too: see the top of this file
    const slot = spec.containerName.slice(spec.containerName.lastIndexOf("-") + 1);
    const base = toContainerArgs(spec);
    const container = new docker.Container(`${name}-container-${slot}`, {
      ...base,
      networkMode: network.name,
      networksAdvanced: [{ name: network.name }],
      volumes: [{ volumeName: volume.name, containerPath: spec.data.target }],
      envs: pulumi.secret(pulumi.all([secretKey.result]).apply(([key]) => [...base.envs, `APP_SECRET_KEY=${key}`])),
    }, {
      parent: this,
      replaceOnChanges: REPLACE_ON_CHANGES,
      additionalSecretOutputs: ["envs"],
    });

    // the PIDs limit, the wait for healthy and the audit: the deployment fails when the container fails them
    const gate = new ContainerGate(`${name}-gate-${slot}`, {
      containerId: container.id, pidsLimit: spec.pidsLimit, healthTimeoutSeconds: spec.healthTimeoutSeconds, dockerHost,
    }, { parent: this, provider: dynamicProvider });

    // traffic switches to the new container only now, and the old one is deleted after this
    new EdgeRoute(`${name}-route`, {
      proxy: route.proxy,
      network: network.name,
      routesDir: route.routesDir,
      fileName: route.fileName,
      fileText: route.fileText,
      reload: route.reload,
      upstream: gate.containerId.apply(() => spec.containerName),
      dockerHost,
    }, { parent: this, provider: dynamicProvider });
    return { url: settings.url, containerId: container.id, containerName: spec.containerName };
  }
}
