/**
 * target: swarm, the Pulumi program's side: a Swarm service per customer, pinned to its node
 * (components/swarmCustomerService.ts), behind an overlay encrypted unless swarm.unencryptedOverlays.
 */
import * as pulumi from "@pulumi/pulumi";
import { SwarmCustomerService } from "../../../components/swarmCustomerService";
import type { EnvironmentConfig, SwarmEnvironmentConfig } from "../../config/schema";
import { overlayNetworkName, swarmNodeHosts, swarmServiceName } from "../../swarm/serviceSpec";
import { DEFAULT_RUNTIME } from "../../hardening/sandbox";
import type { CustomerProgram, SettledCustomer } from "../customerProgram";

/** The environment's swarm settings; a customer with a node in an environment without them is refused by checkCustomerInEnvironment first. */
function swarmOf(env: EnvironmentConfig, name: string): SwarmEnvironmentConfig {
  if (env.target !== "swarm") throw new Error(`HardenedService ${name}: target swarm without matching settings`);
  return env;
}

function swarmSettings({ env, customer, registryAuth }: SettledCustomer, name: string) {
  if (customer.node === undefined) throw new Error(`HardenedService ${name}: target swarm without matching settings`);
  return {
    node: customer.node,
    nodeHosts: swarmNodeHosts(swarmOf(env, name)),
    monitorSeconds: swarmOf(env, name).swarm.monitorSeconds,
    registryAuth: registryAuth ? pulumi.secret(registryAuth) : undefined,
  };
}

export const swarmProgram: CustomerProgram = {
  createService(name, { identity, settled, environment, dockerHost }) {
    return new SwarmCustomerService(name, {
      identity,
      settings: settled.then((s) => ({ ...s.service, swarm: swarmSettings(s, name) })),
      dockerHost,
      encryptOverlay: !swarmOf(environment, name).swarm.unencryptedOverlays,
    });
  },
  edgeUpstream: (spec) => swarmServiceName(spec),
  // a customer's overlay is encrypted (its name has this suffix too) unless waived
  edgeAlsoSuffixes: (networkSuffix) => [overlayNetworkName(networkSuffix, true)],
  // the engine of each node sends its tasks' lines to a collector on that node
  // fleet's own collector runs under runc, named, on a sandbox node (whose default runtime is runsc)
  logCollectors: (env, _dockerHost) => swarmOf(env, "log collectors").swarm.nodes
    .map((n) => ({ node: n.name, host: n.host, ...(n.sandbox === "none" ? {} : { runtime: DEFAULT_RUNTIME }) })),
  logAddress: (logs, customer) => (customer.node === undefined ? undefined : logs?.nodes?.[customer.node]),
  stackOutputs: (customer) => ({ node: customer.node, target: "swarm" }),
};
