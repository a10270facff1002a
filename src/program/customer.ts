/**
 * A customer stack (e.g. staging-acme): one customer's hardened service, running the image its
 * environment stack publishes, with the settings that stack validated.
 */
import * as pulumi from "@pulumi/pulumi";
import { HardenedService } from "../../components/hardenedService";
import { checkCustomerInEnvironment, parseCustomerShape, parseEnvironmentConfig } from "../config/load";
import { serviceSpec } from "../hardening/serviceSpec";
import { stackReferenceName } from "./stackRef";

export interface EnvironmentView {
  settings: unknown;
  image: { ref?: string; version?: string } | undefined;
}

/** Reads what the environment stack published; says what to run first when it has nothing yet. */
export async function readEnvironment(envStack: string): Promise<EnvironmentView> {
  const ref = new pulumi.StackReference(stackReferenceName(envStack));
  const settings = (await ref.getOutputDetails("settings")).value;
  if (settings === undefined) {
    throw new Error(`environment stack '${envStack}' does not exist or has not been deployed: run 'pulumi up' on stack '${envStack}' (or 'fleet rollout') first`);
  }
  const image = (await ref.getOutputDetails("image")).value as EnvironmentView["image"];
  return { settings, image };
}

export async function customerProgram(rawCustomer: unknown, readEnv = readEnvironment): Promise<Record<string, unknown>> {
  const shape = parseCustomerShape(rawCustomer);
  const view = await readEnv(shape.environment);
  const env = parseEnvironmentConfig(view.settings);
  const customer = checkCustomerInEnvironment(shape, env);
  if (!view.image?.ref) {
    throw new Error(`environment stack '${env.name}' has no image yet: run 'pulumi up' on stack '${env.name}' first`);
  }
  const imageRef = customer.image ?? view.image.ref;
  const spec = serviceSpec(env, customer, imageRef);
  // the docker provider's own precedence: docker:host config, else DOCKER_HOST
  const dockerHost = new pulumi.Config("docker").get("host") ?? process.env.DOCKER_HOST ?? "";
  const service = new HardenedService(customer.id, { spec, protectData: env.volumes.protect, dockerHost });
  return {
    role: "customer",
    customerId: customer.id,
    environment: env.name,
    plan: customer.plan,
    url: service.url,
    image: imageRef,
    pinned: customer.image !== undefined,
    version: customer.image && customer.image !== view.image.ref ? "pinned" : view.image.version ?? "unknown",
    containerName: service.containerName,
    containerId: service.containerId,
    networkName: service.networkName,
    dataVolumeName: service.dataVolumeName,
  };
}
