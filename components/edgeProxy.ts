/**
 * hardened-fleet:edge:EdgeProxy — an environment's edge proxy (Caddy): the only container that
 * publishes host ports (edge.address, 443 and 80 by default). Each customer answers at
 * https://<customer>.<edge.domain> through it; the routes are files in its volume, one per
 * customer, written by the customers' stacks (EdgeRoute). Hardened like a customer's app: the same
 * ContainerSpec mapping, the same gate (PIDs limit, healthy, audit).
 *
 * Its image is built here from src/edge/assets on the edge base (Debian's caddy package, made by
 * scripts/setup-engine.sh), in every environment: it is infrastructure, not the customers' app.
 * A new proxy container stops the old one first (the host ports are fixed): a few seconds without
 * the edge, so it is replaced only when its image or settings change.
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { EnvironmentConfig } from "../src/config/schema";
import { edgeLabels, edgeProxySpec } from "../src/edge/edgeSpec";
import { EDGE_ROUTES_DIR } from "../src/edge/routes";
import { NAME_PREFIX, customerNames, edgeNames } from "../src/hardening/names";
import { EdgeNetworks } from "./edgeLinks";
import { assetsImage, gatedContainer, keptVolume, ownNetwork } from "./infrastructure";

export interface EdgeProxyArgs {
  env: EnvironmentConfig;
  /** the Pulumi project directory, which holds src/edge/assets */
  projectDir: string;
  dockerHost?: string;
  /**
   * Other endings of a customer network's name (after hf-<environment>-<customer>) the proxy joins
   * besides customerNetworkSuffix: the target's (src/targets/<target>/program.ts, edgeAlsoSuffixes)
   */
  alsoNetworkSuffixes?: string[];
}

/** The ending of every customer network's name in `environment`, after hf-<environment>-<customer>. Pure. */
export function customerNetworkSuffix(environment: string): string {
  return customerNames(environment, "x").network.slice(`${NAME_PREFIX}-${environment}-x`.length);
}

export class EdgeProxy extends pulumi.ComponentResource {
  readonly containerName: string;
  readonly containerId: pulumi.Output<string>;
  readonly imageRef: pulumi.Output<string>;

  constructor(name: string, args: EdgeProxyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hardened-fleet:edge:EdgeProxy", name, {}, opts);
    const { env } = args;
    const names = edgeNames(env.name, env.edge.name);
    const dockerHost = args.dockerHost ?? "";
    const labels = Object.entries(edgeLabels(env.name)).map(([label, value]) => ({ label, value }));
    const assets = path.join(args.projectDir, "src", "edge", "assets");

    const network = ownNetwork(this, name, names.network, labels);
    // the local CA's key and the certificates: kept when the proxy is replaced or its stack destroyed
    const volume = keptVolume(this, name, names.dataVolume, labels);
    const image = assetsImage(this, name, { repository: "hardened-fleet/edge", assets, base: env.edge.base });

    // fixed name and host ports: the old proxy goes before the new one starts
    const spec = edgeProxySpec(env, "pending");
    const { container, gate, dynamicProvider } = gatedContainer(this, name, { spec, image, network, volume, dockerHost });

    // a new proxy container joins the network of every customer it has a route for (in its volume)
    new EdgeNetworks(`${name}-networks`, {
      containerId: gate.containerId,
      routesDir: EDGE_ROUTES_DIR,
      networkPrefix: `${NAME_PREFIX}-${env.name}-`,
      networkSuffix: customerNetworkSuffix(env.name),
      alsoSuffixes: args.alsoNetworkSuffixes ?? [],
      dockerHost,
    }, { parent: this, provider: dynamicProvider });

    this.containerName = names.container;
    this.containerId = container.id;
    this.imageRef = image.repoDigest;
    this.registerOutputs({ containerName: this.containerName, containerId: this.containerId, imageRef: this.imageRef });
  }
}
