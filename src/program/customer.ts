/**
 * A customer stack (e.g. staging-acme): one customer's hardened service, running the image its
 * environment stack publishes, with the settings that stack validated.
 */
import * as pulumi from "@pulumi/pulumi";
import { HardenedService } from "../../components/hardenedService";
import { checkCustomerInEnvironment, parseCustomerShape, parseEnvironmentConfig } from "../config/load";
import type { EnvironmentConfig } from "../config/schema";
import { customerHostname, customerUrl } from "../edge/edgeSpec";
import { EDGE_ROUTES_DIR, reloadCommand, routeFile, routeFileName } from "../edge/routes";
import { edgeNames } from "../hardening/names";
import { serviceIdentity, serviceSpec, type ServiceSpec } from "../hardening/serviceSpec";
import { swarmNodeHosts, swarmServiceName } from "../swarm/serviceSpec";
import { readEnvironment } from "./environmentView";
import { programDockerHost } from "./stackRef";

/**
 * The customer's service, from its own config and what its environment stack published.
 *
 * With `local` (the environment's config as the project's stack file has it), the customer is
 * checked against it first, so a bad plan or a reserved id still stops before anything is created; then the
 * service starts (its network) while the environment's published settings are read, and those
 * decide everything else. Without it, everything waits for that read.
 */
export async function customerProgram(rawCustomer: unknown, readEnv = readEnvironment, local?: EnvironmentConfig): Promise<Record<string, unknown>> {
  const shape = parseCustomerShape(rawCustomer);
  if (local) checkCustomerInEnvironment(shape, local);
  const settled = (async () => {
    const view = await readEnv(shape.environment);
    const env = parseEnvironmentConfig(view.settings);
    const customer = checkCustomerInEnvironment(shape, env);
    if (!view.image?.ref) {
      throw new Error(`environment stack '${env.name}' has no image yet: run 'pulumi up' on stack '${env.name}' first`);
    }
    const imageRef = customer.image ?? view.image.ref;
    return { view, env, customer, imageRef, image: view.image, spec: serviceSpec(env, customer, imageRef) };
  })();
  if (!local) await settled;
  const dockerHost = programDockerHost();
  const service = new HardenedService(shape.id, {
    identity: serviceIdentity(shape.environment, shape.id),
    settings: settled.then((s) => ({
      spec: s.spec,
      protectData: s.env.volumes.protect,
      route: serviceRoute(s.env, s.spec),
      url: customerUrl(s.env.edge, s.customer.id),
      swarm: s.env.swarm && s.customer.node ? {
        node: s.customer.node,
        nodeHosts: swarmNodeHosts(s.env),
        monitorSeconds: s.env.swarm.monitorSeconds,
        registryAuth: s.view.registryAuth ? pulumi.secret(s.view.registryAuth) : undefined,
      } : undefined,
    })),
    dockerHost,
    // only a swarm customer has a node (checkCustomerInEnvironment), and the network must know before the settings arrive
    target: shape.node !== undefined ? "swarm" : "docker",
    encryptOverlay: !(local ?? (await settled).env).swarm?.unencryptedOverlays,
  });
  const { env, customer, imageRef, image } = await settled;
  return {
    role: "customer",
    customerId: customer.id,
    environment: env.name,
    plan: customer.plan,
    url: service.url,
    image: imageRef,
    pinned: customer.image !== undefined,
    version: customer.image && customer.image !== image.ref ? "pinned" : image.version ?? "unknown",
    containerName: service.containerName,
    ...(shape.node !== undefined ? { node: shape.node, target: "swarm" } : {}),
    containerId: service.containerId,
    networkName: service.networkName,
    dataVolumeName: service.dataVolumeName,
  };
}

/** The customer's route in its environment's edge proxy, to the container of `spec` (on a swarm: to its service). */
export function serviceRoute(env: EnvironmentConfig, spec: ServiceSpec) {
  return {
    proxy: edgeNames(env.name, env.edge.name).container,
    routesDir: EDGE_ROUTES_DIR,
    fileName: routeFileName(spec.customerId),
    fileText: routeFile({
      environment: env.name,
      customerId: spec.customerId,
      hostname: customerHostname(env.edge, spec.customerId),
      upstreamContainer: env.target === "swarm" ? swarmServiceName(spec) : spec.containerName,
      upstreamPort: spec.port,
      tls: env.edge,
    }),
    reload: reloadCommand(),
  };
}
