/**
 * What every customer service has, whatever runs it: the outputs the program reads (HardenedService),
 * the settings it takes, and the shared pieces (CustomerParts): the customer's own network, its
 * generated secret key and its route in the edge proxy. One sibling component per target builds on
 * them, the way pulumi-awsx keeps FargateService and EC2Service side by side:
 *
 *  - DockerCustomerService (dockerCustomerService.ts): a container on one engine, with its data volume;
 *  - SwarmCustomerService (swarmCustomerService.ts): a Swarm service pinned to its node.
 *
 * Both were one component, hardened-fleet:service:HardenedService, before. Existing stacks hold that
 * type and its children: each sibling takes it as an alias, and each child an alias to the same child
 * under it, so `pulumi up` on an existing stack finds every resource where it was (nothing replaced).
 *
 * The network needs only the customer's identity, so it is created at once, while the rest of the
 * settings may still be on their way (a customer stack reads its environment's through a
 * StackReference): the docker provider spends two seconds creating a network.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { ServiceIdentity, ServiceSpec } from "../src/hardening/serviceSpec";
import { DynamicProvider } from "./containerGate";
import { EdgeRoute } from "./edgeLinks";

/** The type of the one customer component before the split; every existing customer stack holds it. */
export const HARDENED_SERVICE_TYPE = "hardened-fleet:service:HardenedService";

/** What a customer stack publishes of its service, whatever the target. */
export interface HardenedService {
  readonly url: pulumi.Output<string>;
  /** the container (on a swarm: the running task's container) */
  readonly containerId: pulumi.Output<string>;
  /** the container's name (on a swarm: the service's) */
  readonly containerName: pulumi.Output<string>;
  readonly networkName: string;
  readonly dataVolumeName: string;
}

/** Where the edge proxy sends this customer's traffic. */
export interface ServiceRoute {
  /** the proxy container (hf-<environment>-<edge.name>) */
  proxy: string;
  routesDir: string;
  fileName: string;
  /** the route file, sending the customer's hostname to the container (or service) of the spec */
  fileText: string;
  reload: string[];
}

/** The settings every target's service takes. */
export interface ServiceSettings {
  spec: ServiceSpec;
  /** production protects the data volume from `pulumi destroy` as well */
  protectData: boolean;
  route: ServiceRoute;
  /** https://<customer>.<edge.domain> */
  url: string;
}

export interface CustomerServiceArgs<S extends ServiceSettings> {
  /** names and identity labels: enough for the network */
  identity: ServiceIdentity;
  /** every other setting, or the promise of them; a rejected promise fails the deployment with its error */
  settings: S | Promise<S>;
  /** the engine the docker provider deploys to (docker:host or DOCKER_HOST); the dynamic resources use the same */
  dockerHost?: string;
}

/** What a sibling has deployed once its settings are known. */
export interface Deployed {
  url: string;
  containerId: pulumi.Output<string>;
  containerName: string;
}

/** A sibling's own options: it was the HardenedService of the same name and parent. */
export function serviceOptions(opts?: pulumi.ComponentResourceOptions): pulumi.ComponentResourceOptions {
  return { ...opts, aliases: [...(opts?.aliases ?? []), { type: HARDENED_SERVICE_TYPE }] };
}

/**
 * The pieces every sibling shares, for the component `service` named `name`. Every child it makes,
 * or that the sibling makes through `child`, is parented by the service and aliased to the same
 * child of the HardenedService it was (same name, same type, that old parent).
 */
export class CustomerParts {
  /** the URN the service had as a HardenedService */
  readonly legacyUrn: pulumi.Output<string>;
  /** identity labels, as the docker provider takes them */
  readonly labels: { label: string; value: string }[];

  constructor(readonly service: pulumi.ComponentResource, readonly name: string, readonly identity: ServiceIdentity,
    opts?: pulumi.ComponentResourceOptions) {
    this.legacyUrn = pulumi.createUrn(name, HARDENED_SERVICE_TYPE, opts?.parent);
    this.labels = Object.entries(identity.identityLabels).map(([label, value]) => ({ label, value }));
  }

  /** Options of a child: parented by the service, aliased to the child of the same name under the old HardenedService. */
  child<T extends pulumi.ResourceOptions>(opts: T = {} as T): T {
    return { ...opts, parent: this.service, aliases: [...(opts.aliases ?? []), { parent: this.legacyUrn }] };
  }

  /**
   * The customer's own network (`<name>-network`, or the name given). Its labels say only whose it
   * is, and a label change never replaces it (Docker cannot relabel in place).
   */
  network(resourceName: string, args: Omit<docker.NetworkArgs, "labels">): docker.Network {
    return new docker.Network(resourceName, { ...args, labels: this.labels }, this.child({ ignoreChanges: ["labels"] }));
  }

  /** The app's secret key, generated once and kept in the state. */
  secretKey(): random.RandomPassword {
    return new random.RandomPassword(`${this.name}-secret-key`, { length: 48, special: false }, this.child());
  }

  /** The dynamic resources' provider (its plugin starts as it registers: see the siblings for when). */
  dynamicProvider(dependsOn: pulumi.Resource[]): DynamicProvider {
    return new DynamicProvider(`${this.name}-dynamic`, this.child({ dependsOn }));
  }

  /** The settings, once they arrive, checked against the identity the network was made for. */
  settle<S extends ServiceSettings>(settings: S | Promise<S>): Promise<S> {
    const { identity, name } = this;
    return Promise.resolve(settings).then((s) => {
      const { spec } = s;
      if (spec.networkName !== identity.networkName || spec.dataVolumeName !== identity.dataVolumeName || !spec.containerName.startsWith(`${identity.containerPrefix}-`)) {
        throw new Error(`HardenedService ${name}: the settings are for ${spec.containerName}, not ${identity.containerPrefix}`);
      }
      return s;
    });
  }

  /** The customer's route in the edge proxy, to `upstream`: an output of what must be ready first (the gate, the service). */
  route(route: ServiceRoute, network: docker.Network, upstream: pulumi.Output<string>, dockerHost: string,
    provider: DynamicProvider): EdgeRoute {
    return new EdgeRoute(`${this.name}-route`, {
      proxy: route.proxy,
      network: network.name,
      routesDir: route.routesDir,
      fileName: route.fileName,
      fileText: route.fileText,
      reload: route.reload,
      upstream,
      dockerHost,
    }, this.child({ provider }));
  }
}

/**
 * A sibling's outputs (the HardenedService interface) from what it deploys once its settings arrive
 * and the names known now; a failure is reported through them.
 */
export function serviceOutputs(deployed: Promise<Deployed>, networkName: string, dataVolumeName: string): HardenedService {
  deployed.catch(() => { /* reported through the outputs, which fail the deployment */ });
  return {
    url: pulumi.output(deployed.then((d) => d.url)),
    containerId: pulumi.output(deployed.then((d) => d.containerId)),
    containerName: pulumi.output(deployed.then((d) => d.containerName)),
    networkName,
    dataVolumeName,
  };
}
