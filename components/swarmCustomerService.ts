/**
 * hardened-fleet:service:SwarmCustomerService — one customer on a Docker Swarm (target: swarm): its
 * own overlay (attachable, so that the edge proxy, a container, can join it; encrypted between nodes),
 * its secret key as a Swarm secret, the service (SwarmService: updated in place by Swarm's own rolling
 * update, start-first, rolled back when the new task fails) and its route in the edge proxy. The data
 * volume is made by the engine of the node the service is pinned to, at its first start: it is no
 * resource here. Shared pieces: hardenedService.ts.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type * as random from "@pulumi/random";
import { CustomerParts, serviceOptions, serviceOutputs, type CustomerServiceArgs, type Deployed, type HardenedService, type ServiceSettings } from "./hardenedService";
import { SwarmService } from "./swarmService";
import { overlayNetworkName, swarmServiceName, toSwarmServiceSpec } from "../src/swarm/serviceSpec";
import type { RegistryAuth } from "../src/swarm/deploy";

/** Where the service runs and how it is watched (the rest comes from the spec). */
export interface SwarmSettings {
  /** swarm.nodes[].name the customer is pinned to */
  node: string;
  /** every node's engine, to audit the task where it runs */
  nodeHosts: Record<string, string>;
  monitorSeconds: number;
  registryAuth?: pulumi.Output<RegistryAuth>;
}

export interface SwarmServiceSettings extends ServiceSettings {
  swarm: SwarmSettings;
}

export interface SwarmCustomerServiceArgs extends CustomerServiceArgs<SwarmServiceSettings> {
  /** the overlay is encrypted (IPsec between nodes) unless this is false (swarm.unencryptedOverlays) */
  encryptOverlay?: boolean;
}

export class SwarmCustomerService extends pulumi.ComponentResource implements HardenedService {
  declare readonly url: pulumi.Output<string>;
  declare readonly containerId: pulumi.Output<string>;
  declare readonly containerName: pulumi.Output<string>;
  declare readonly networkName: string;
  declare readonly dataVolumeName: string;

  constructor(name: string, args: SwarmCustomerServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hardened-fleet:service:SwarmCustomerService", name, {}, serviceOptions(opts));
    const parts = new CustomerParts(this, name, args.identity, opts);
    // Options cannot change in place, and a replaced network would go first (its name is fixed), taking
    // the service with it: an encrypted overlay is another resource of another name, made beside an
    // existing unencrypted one; the service and the route move to it, and the old one goes at the end
    const encrypted = args.encryptOverlay !== false;
    const networkName = overlayNetworkName(args.identity.networkName, encrypted);
    const network = parts.network(encrypted ? `${name}-network-ipsec` : `${name}-network`, {
      name: networkName,
      driver: "overlay",
      attachable: true,
      ...(encrypted ? { options: { encrypted: "true" } } : {}),
    });
    const secretKey = parts.secretKey();
    const deployed = parts.settle(args.settings).then((settings) => this.deploy(parts, settings, network, secretKey, args.dockerHost ?? ""));

    const outputs = serviceOutputs(deployed, networkName, args.identity.dataVolumeName);
    Object.assign(this, outputs);
    this.registerOutputs(outputs);
  }

  /** The Swarm secret, the service and its route, once the settings are known. */
  private deploy(parts: CustomerParts, settings: SwarmServiceSettings, network: docker.Network, secretKey: random.RandomPassword,
    dockerHost: string): Deployed {
    const { name } = parts;
    const { spec, route, swarm } = settings;
    const serviceName = swarmServiceName(spec);
    const secret = new docker.Secret(`${name}-secret`, {
      name: `${serviceName}-app-secret-key`,
      data: secretKey.result.apply((key) => Buffer.from(key).toString("base64")),
      labels: parts.labels,
    }, parts.child({ dependsOn: [network] }));
    const dynamicProvider = parts.dynamicProvider([network]);
    const service = new SwarmService(`${name}-service`, {
      managerHost: dockerHost,
      nodeHosts: swarm.nodeHosts,
      spec: pulumi.all([secret.id, secret.name, network.name]).apply(([id, secretName, overlay]) => toSwarmServiceSpec(spec, {
        node: swarm.node, secret: { id, name: secretName }, monitorSeconds: swarm.monitorSeconds,
        ...(overlay !== spec.networkName ? { network: overlay } : {}),
      })),
      registryAuth: swarm.registryAuth,
      timeoutSeconds: spec.healthTimeoutSeconds + swarm.monitorSeconds,
    }, parts.child({ provider: dynamicProvider, dependsOn: [network] }));
    parts.route(route, network, service.serviceId.apply(() => serviceName), dockerHost, dynamicProvider);
    return { url: settings.url, containerId: service.containerId, containerName: serviceName };
  }
}
