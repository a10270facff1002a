/**
 * The environment stack (staging, prod): owns the image every customer of the environment runs.
 * staging builds it (mode build); prod runs an image that passed staging, by ID (mode promote).
 */
import * as path from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { EdgeProxy, customerNetworkSuffix } from "../../components/edgeProxy";
import { HardenedImage } from "../../components/hardenedImage";
import { LogCollector } from "../../components/logCollector";
import type { EnvironmentConfig } from "../config/schema";
import { logCollectorNames } from "../hardening/names";
import { checkPromotableImage } from "./imageCheck";
import { programDockerHost, stackReferenceName } from "./stackRef";
import { customerUrl } from "../edge/edgeSpec";
import { environmentCustomerProgram } from "../targets/programFor";
import Dockerode from "dockerode";
import { dockerodeOptions } from "../engine/connection";

/** The value of an output the program itself made from config (known during a preview too). */
function outputValue<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => { resolve(v); return v; }));
}

export interface EnvironmentOutputs {
  role: "environment";
  settings: EnvironmentConfig;
  image: pulumi.Output<{ ref: string; name: string; version: string; revision: string }> | undefined;
}

/** The environment's edge proxy (every environment has one), as the stack output `edge`. */
function edgeProxy(env: EnvironmentConfig, projectDir: string) {
  const dockerHost = programDockerHost();
  // the proxy joins every customer's network, whose name its customers' target decides
  const alsoNetworkSuffixes = environmentCustomerProgram(env).edgeAlsoSuffixes(customerNetworkSuffix(env.name));
  const proxy = new EdgeProxy(env.name, { env, projectDir, dockerHost, alsoNetworkSuffixes });
  return {
    container: proxy.containerName,
    image: proxy.imageRef,
    urls: customerUrl(env.edge, "<customer>"),
  };
}

/**
 * The environment's log collectors, where its target runs them (CustomerProgram.logCollectors): one on
 * the engine of a one-host environment, one on each node of a swarm (through that node's engine), as
 * the stack output `logs` (PublishedLogs).
 */
function logCollectors(env: EnvironmentConfig, projectDir: string): Record<string, unknown> {
  const places = environmentCustomerProgram(env).logCollectors(env, programDockerHost());
  const nodes: Record<string, pulumi.Output<string>> = {};
  let address: pulumi.Output<string> | undefined;
  for (const { node, host } of places) {
    const name = node ? `${env.name}-logs-${node}` : `${env.name}-logs`;
    const opts = node ? { providers: [new docker.Provider(`${name}-engine`, { host })] } : undefined;
    const collector = new LogCollector(name, { env, projectDir, dockerHost: host }, opts);
    if (node) nodes[node] = collector.address;
    else address = collector.address;
  }
  if (places.length === 0) return {};
  const container = logCollectorNames(env.name, env.edge.name).container;
  return { logs: address ? { container, address } : { container, nodes } };
}

/** The registry account (env.registry, with the secret hardened-fleet:registryPassword), if the environment has one. */
function registryAccount(env: EnvironmentConfig) {
  if (!env.registry) return undefined;
  const password = new pulumi.Config("hardened-fleet").getSecret("registryPassword");
  if (env.registry.username && !password) {
    throw new Error(`registry.username is set for environment '${env.name}' but its password is not: ` +
      `pulumi config set --secret hardened-fleet:registryPassword <password> -s ${env.name}`);
  }
  const auth = env.registry.username && password
    ? pulumi.secret(pulumi.all([password]).apply(([p]) => ({ username: env.registry!.username!, password: p ?? "", serveraddress: env.registry!.address })))
    : undefined;
  return { address: env.registry.address, username: env.registry.username, password, auth };
}

export async function environmentProgram(env: EnvironmentConfig, projectDir: string): Promise<Record<string, unknown>> {
  const edge = edgeProxy(env, projectDir);
  const logs = logCollectors(env, projectDir);
  const registry = registryAccount(env);
  // customer stacks read it to pull on every node (a secret output: never in plain text in the state)
  const registryOutputs = registry?.auth ? { registryAuth: registry.auth } : {};
  if (env.image.mode === "build") {
    const image = new HardenedImage(env.name, {
      image: env.image,
      app: env.app,
      projectDir,
      workDir: path.join(projectDir, ".fleet", "build", env.name),
      registry,
    });
    return {
      role: "environment",
      settings: env,
      edge,
      ...logs,
      ...registryOutputs,
      image: pulumi.all([image.imageRef, image.imageName]).apply(([ref, name]) => ({
        ref, name, version: image.version, revision: image.revision,
      })),
    };
  }

  const source = env.image.fromStack;
  let ref = env.image.digest;
  if (!ref) {
    const upstream = new pulumi.StackReference(stackReferenceName(source));
    const details = await upstream.getOutputDetails("image");
    const value = details.value as { ref?: string } | undefined;
    if (!value?.ref) {
      throw new Error(`environment '${env.name}' promotes from stack '${source}', which has no image yet: run 'pulumi up' on '${source}' first`);
    }
    ref = value.ref;
  }
  const image = await checkPromotableImage(ref, `stack ${source}`, {
    engine: new Dockerode(dockerodeOptions(programDockerHost() || undefined)),
    // promoted by repository digest, the image's base must be the one this environment pins
    pinnedBase: env.registry ? env.image.base : undefined,
    auth: registry?.auth ? await outputValue(registry.auth) : undefined,
  });
  return { role: "environment", settings: env, edge, ...logs, ...registryOutputs, image: { ...image, promotedFrom: source } };
}
