/**
 * hardened-fleet:logs:LogCollector — an environment's log collector (target docker): Debian's rsyslog
 * and logrotate in a hardened container (src/logs/collector.ts), taking every customer container's
 * lines from the engine's syslog driver and keeping them per customer in its volume, bounded and
 * rotated, past the containers that wrote them (docs/logs.md). Customer stacks read its address
 * from the environment stack's output `logs`.
 *
 * Its image is built here from src/logs/assets on logging.collector.base (made by
 * scripts/setup-engine.sh). It is alone on its own network, so it has the network's first address
 * whenever it is made again: the address customers send to stays the same.
 */
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { EnvironmentConfig } from "../src/config/schema";
import { logCollectorNames } from "../src/hardening/names";
import { collectorAddress } from "../src/logs/driver";
import { logCollectorLabels, logCollectorSpec } from "../src/logs/collector";
import { assetsImage, gatedContainer, keptVolume, ownNetwork } from "./infrastructure";

export interface LogCollectorArgs {
  env: EnvironmentConfig;
  /** the Pulumi project directory, which holds src/logs/assets */
  projectDir: string;
  dockerHost?: string;
  /** the runtime named for it: runc on a swarm sandbox node (its default is runsc); else the engine's default */
  runtime?: string;
}

export class LogCollector extends pulumi.ComponentResource {
  readonly containerName: string;
  /** where the customers' syslog driver sends: udp://<its address>:5514 */
  readonly address: pulumi.Output<string>;

  constructor(name: string, args: LogCollectorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("hardened-fleet:logs:LogCollector", name, {}, opts);
    const { env } = args;
    const names = logCollectorNames(env.name, env.edge.name);
    const labels = Object.entries(logCollectorLabels(env.name)).map(([label, value]) => ({ label, value }));
    const assets = path.join(args.projectDir, "src", "logs", "assets");

    const network = ownNetwork(this, name, names.network, labels);
    // the customers' lines: kept when the collector is replaced or its stack destroyed
    const volume = keptVolume(this, name, names.dataVolume, labels);
    const image = assetsImage(this, name, { repository: "hardened-fleet/log-collector", assets, base: env.logging.collector.base });

    // a fixed name; and the old one must free the network's first address for the new one
    const spec = { ...logCollectorSpec(env, "pending"), ...(args.runtime ? { runtime: args.runtime } : {}) };
    const { container } = gatedContainer(this, name, { spec, image, network, volume, dockerHost: args.dockerHost ?? "" });

    this.containerName = names.container;
    this.address = container.networkDatas.apply((data) => {
      const ip = data.find((d) => d.networkName === names.network)?.ipAddress;
      if (!ip) throw new pulumi.ResourceError(`log collector ${names.container} has no address on ${names.network}`, this);
      return collectorAddress(ip);
    });
    this.registerOutputs({ containerName: this.containerName, address: this.address });
  }
}
