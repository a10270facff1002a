/**
 * hardened-fleet:service:HardenedService — one customer in one environment: its own network (shared
 * with nothing but the environment's edge proxy), its data volume (kept on delete), its generated
 * secret key (a file the app reads, never an environment variable), the hardened container, its gate
 * and its route in the edge proxy.
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
import { SecretFile } from "./secretFile";
import { LABEL_ROLE, ROLE_SECRETS } from "../src/hardening/names";
import { SwarmService } from "./swarmService";
import { overlayNetworkName, swarmServiceName, toSwarmServiceSpec } from "../src/swarm/serviceSpec";
import type { RegistryAuth } from "../src/swarm/deploy";

/** target: swarm: where the service runs and how it is watched (the rest comes from the spec). */
export interface SwarmSettings {
  /** swarm.nodes[].name the customer is pinned to */
  node: string;
  /** every node's engine, to audit the task where it runs */
  nodeHosts: Record<string, string>;
  monitorSeconds: number;
  registryAuth?: pulumi.Output<RegistryAuth>;
}

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
  /** target: swarm only */
  swarm?: SwarmSettings;
}

export interface HardenedServiceArgs {
  /** names and identity labels: enough for the network */
  identity: ServiceIdentity;
  /** every other setting, or the promise of them; a rejected promise fails the deployment with its error */
  settings: ServiceSettings | Promise<ServiceSettings>;
  /** the engine the docker provider deploys to (docker:host or DOCKER_HOST); the container gate uses the same */
  dockerHost?: string;
  /** docker (default): a container on that engine; swarm: a Swarm service, through that engine (a manager) */
  target?: "docker" | "swarm";
  /** target: swarm: the overlay is encrypted (IPsec between nodes) unless this is false (swarm.unencryptedOverlays) */
  encryptOverlay?: boolean;
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
    const swarm = args.target === "swarm";
    // on a swarm: an overlay across the nodes, attachable so that the edge proxy (a container) can join it,
    // encrypted between nodes. Options cannot change in place, and a replaced network would go first (its
    // name is fixed), taking the service with it: an encrypted overlay is another resource of another name,
    // made beside an existing unencrypted one; the service and the route move to it, and the old one goes at the end
    const encrypted = swarm && args.encryptOverlay !== false;
    const networkName = swarm ? overlayNetworkName(identity.networkName, encrypted) : identity.networkName;
    const network = new docker.Network(encrypted ? `${name}-network-ipsec` : `${name}-network`, {
      name: networkName,
      driver: swarm ? "overlay" : "bridge",
      ...(swarm ? { attachable: true } : {}),
      ...(encrypted ? { options: { encrypted: "true" } } : {}),
      labels,
    }, { parent: this, ...keep });

    const secretKey = new random.RandomPassword(`${name}-secret-key`, { length: 48, special: false }, { parent: this });

    const deployed = Promise.resolve(args.settings).then((settings) => {
      const { spec } = settings;
      if (spec.networkName !== identity.networkName || spec.dataVolumeName !== identity.dataVolumeName || !spec.containerName.startsWith(`${identity.containerPrefix}-`)) {
        throw new Error(`HardenedService ${name}: the settings are for ${spec.containerName}, not ${identity.containerPrefix}`);
      }
      if (swarm !== (settings.swarm !== undefined)) throw new Error(`HardenedService ${name}: target ${args.target ?? "docker"} without matching settings`);
      return settings.swarm
        ? this.deploySwarm(name, settings, settings.swarm, network, secretKey, labels, args.dockerHost ?? "")
        : this.deploy(name, settings, network, secretKey, labels, args.dockerHost ?? "");
    });
    deployed.catch(() => { /* reported through the outputs below, which fail the deployment */ });

    this.url = pulumi.output(deployed.then((d) => d.url));
    this.containerId = pulumi.output(deployed.then((d) => d.containerId));
    this.containerName = pulumi.output(deployed.then((d) => d.containerName));
    this.networkName = networkName;
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
    // the secret key as a file on a volume of its own, written before the container exists (the app
    // reads it at start), never an environment variable: see components/secretFile.ts
    if (!spec.secretFile) throw new pulumi.ResourceError(`HardenedService ${name}: the spec has no secret key file`, this);
    const keyFile = new SecretFile(`${name}-secret-file`, {
      file: spec.secretFile,
      content: pulumi.secret(secretKey.result),
      image: spec.image,
      labels: { ...spec.identityLabels, [LABEL_ROLE]: ROLE_SECRETS },
      dockerHost,
    }, { parent: this, provider: dynamicProvider });
    const container = new docker.Container(`${name}-container-${slot}`, {
      ...base,
      networkMode: network.name,
      networksAdvanced: [{ name: network.name }],
      volumes: [
        { volumeName: volume.name, containerPath: spec.data.target },
        { volumeName: keyFile.file.apply((f) => f.volume), containerPath: spec.secretFile.dir, readOnly: true },
      ],
    }, {
      parent: this,
      replaceOnChanges: REPLACE_ON_CHANGES,
    });

    // the PIDs limit, the wait for healthy and the audit: the deployment fails when the container fails them
    const gate = new ContainerGate(`${name}-gate-${slot}`, {
      containerId: container.id, pidsLimit: spec.pidsLimit, healthTimeoutSeconds: spec.healthTimeoutSeconds, dockerHost,
    }, { parent: this, provider: dynamicProvider });

    // traffic switches to the new container only now, and the old one is deleted after this
    this.route(name, route, network, gate.containerId.apply(() => spec.containerName), dockerHost, dynamicProvider);
    return { url: settings.url, containerId: container.id, containerName: spec.containerName };
  }

  /**
   * target: swarm: the secret key as a Swarm secret, the service (updated in place by Swarm's own
   * rolling update, start-first, rolled back when the new task fails) and its route. The data volume
   * is made by the engine of the node the service is pinned to, at its first start.
   */
  private deploySwarm(name: string, settings: ServiceSettings, swarm: SwarmSettings, network: docker.Network, secretKey: random.RandomPassword,
    labels: { label: string; value: string }[], dockerHost: string): { url: string; containerId: pulumi.Output<string>; containerName: string } {
    const { spec, route } = settings;
    const serviceName = swarmServiceName(spec);
    const secret = new docker.Secret(`${name}-secret`, {
      name: `${serviceName}-app-secret-key`,
      data: secretKey.result.apply((key) => Buffer.from(key).toString("base64")),
      labels,
    }, { parent: this, dependsOn: [network] });
    const dynamicProvider = new DynamicProvider(`${name}-dynamic`, { parent: this, dependsOn: [network] });
    const service = new SwarmService(`${name}-service`, {
      managerHost: dockerHost,
      nodeHosts: swarm.nodeHosts,
      spec: pulumi.all([secret.id, secret.name, network.name]).apply(([id, secretName, networkName]) => toSwarmServiceSpec(spec, {
        node: swarm.node, secret: { id, name: secretName }, monitorSeconds: swarm.monitorSeconds,
        ...(networkName !== spec.networkName ? { network: networkName } : {}),
      })),
      registryAuth: swarm.registryAuth,
      timeoutSeconds: spec.healthTimeoutSeconds + swarm.monitorSeconds,
    }, { parent: this, provider: dynamicProvider, dependsOn: [network] });
    this.route(name, route, network, service.serviceId.apply(() => serviceName), dockerHost, dynamicProvider);
    return { url: settings.url, containerId: service.containerId, containerName: serviceName };
  }

  /** The customer's route in the edge proxy, to `upstream` (an output of what must be ready first). */
  private route(name: string, route: ServiceRoute, network: docker.Network, upstream: pulumi.Output<string>, dockerHost: string,
    provider: DynamicProvider): EdgeRoute {
    return new EdgeRoute(`${name}-route`, {
      proxy: route.proxy,
      network: network.name,
      routesDir: route.routesDir,
      fileName: route.fileName,
      fileText: route.fileText,
      reload: route.reload,
      upstream,
      dockerHost,
    }, { parent: this, provider });
  }
}
