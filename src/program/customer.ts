/**
 * A customer stack (e.g. staging-acme): one customer's hardened service, running the image its
 * environment stack publishes, with the settings that stack validated. What differs between targets
 * comes from the customer's CustomerProgram (src/targets).
 */
import { checkCustomerInEnvironment, parseCustomerShape, parseEnvironmentConfig } from "../config/load";
import type { EnvironmentConfig } from "../config/schema";
import { customerHostname, customerUrl } from "../edge/edgeSpec";
import { EDGE_ROUTES_DIR, reloadCommand, routeFile, routeFileName } from "../edge/routes";
import { edgeNames } from "../hardening/names";
import { serviceIdentity, serviceSpec, type ServiceSpec } from "../hardening/serviceSpec";
import { accessLogRoll } from "../logs/retention";
import type { SettledCustomer } from "../targets/customerProgram";
import { customerProgramFor } from "../targets/programFor";
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
  // the network must know its target before the settings arrive: the customer's own config tells
  const program = customerProgramFor(shape);
  const settled = (async () => {
    const view = await readEnv(shape.environment);
    const env = parseEnvironmentConfig(view.settings);
    const customer = checkCustomerInEnvironment(shape, env);
    if (!view.image?.ref) {
      throw new Error(`environment stack '${env.name}' has no image yet: run 'pulumi up' on stack '${env.name}' first`);
    }
    const imageRef = customer.image ?? view.image.ref;
    const spec = serviceSpec(env, customer, imageRef, program.logAddress(view.logs, customer));
    const settledCustomer: SettledCustomer = {
      env,
      customer,
      service: {
        spec,
        protectData: env.volumes.protect,
        route: serviceRoute(env, spec, program.edgeUpstream(spec)),
        url: customerUrl(env.edge, customer.id),
      },
      registryAuth: view.registryAuth,
    };
    return { ...settledCustomer, imageRef, image: view.image };
  })();
  if (!local) await settled;
  const dockerHost = programDockerHost();
  const service = program.createService(shape.id, {
    identity: serviceIdentity(shape.environment, shape.id),
    settled,
    environment: local ?? (await settled).env,
    dockerHost,
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
    ...program.stackOutputs(shape),
    containerId: service.containerId,
    networkName: service.networkName,
    dataVolumeName: service.dataVolumeName,
  };
}

/** The customer's route in its environment's edge proxy, to `upstream` (the container of `spec`, or its service: CustomerProgram.edgeUpstream). */
export function serviceRoute(env: EnvironmentConfig, spec: ServiceSpec, upstream: string) {
  return {
    proxy: edgeNames(env.name, env.edge.name).container,
    routesDir: EDGE_ROUTES_DIR,
    fileName: routeFileName(spec.customerId),
    fileText: routeFile({
      environment: env.name,
      customerId: spec.customerId,
      hostname: customerHostname(env.edge, spec.customerId),
      upstreamContainer: upstream,
      upstreamPort: spec.port,
      tls: env.edge,
      accessLog: accessLogRoll(env),
    }),
    reload: reloadCommand(),
  };
}
