/**
 * The environment stack (staging, prod): owns the image every customer of the environment runs.
 * staging builds it (mode build); prod runs an image that passed staging, by ID (mode promote).
 */
import * as path from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { EdgeProxy, customerNetworkSuffix } from "../../components/edgeProxy";
import { HardenedImage } from "../../components/hardenedImage";
import { ImageAttestation } from "../../components/imageAttestation";
import { LogCollector } from "../../components/logCollector";
import { SigningKey } from "../../components/signingKey";
import type { EnvironmentConfig } from "../config/schema";
import { logCollectorNames } from "../hardening/names";
import { baseDigestOf, checkPromotableImage } from "./imageCheck";
import { programDockerHost, stackReferenceName } from "./stackRef";
import { customerUrl } from "../edge/edgeSpec";
import { environmentCustomerProgram } from "../targets/programFor";
import Dockerode from "dockerode";
import { dockerodeOptions } from "../engine/connection";
import { checkPromotionSupplyChain, type TrustedKey } from "../supplyChain/promotion";
import { keyFingerprint, parsePrivateKey, publicKeyOf } from "../supplyChain/signature";

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
  for (const { node, host, runtime } of places) {
    const name = node ? `${env.name}-logs-${node}` : `${env.name}-logs`;
    const opts = node ? { providers: [new docker.Provider(`${name}-engine`, { host })] } : undefined;
    const collector = new LogCollector(name, { env, projectDir, dockerHost: host, runtime }, opts);
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

/** supplyChain.database as an absolute path (a relative one is relative to the project directory). */
function databaseSetting(env: EnvironmentConfig, projectDir: string): string | undefined {
  return env.supplyChain.database === undefined ? undefined : path.resolve(projectDir, env.supplyChain.database);
}

/**
 * What a build environment adds to every image it builds: the signing key (the operator's secret
 * hardened-fleet:signingKey, else one made once and kept as a secret in the state), and the
 * attestation (SBOM, scan, signature) of the image; the stack outputs `signing` and `supplyChain`.
 */
function attestImages(env: EnvironmentConfig, image: HardenedImage, registry: ReturnType<typeof registryAccount>) {
  const configured = new pulumi.Config("hardened-fleet").getSecret("signingKey");
  let privateKeyPem: pulumi.Output<string>;
  let publicKeyPem: pulumi.Output<string>;
  if (configured) {
    privateKeyPem = configured.apply((pem) => {
      parsePrivateKey(pem, "the secret hardened-fleet:signingKey");
      return pem;
    });
    publicKeyPem = pulumi.unsecret(privateKeyPem.apply(publicKeyOf));
  } else {
    const key = new SigningKey(`${env.name}-signing-key`, { parent: image });
    privateKeyPem = key.privateKeyPem;
    publicKeyPem = key.publicKeyPem;
  }
  const attestation = new ImageAttestation(`${env.name}-supply-chain`, {
    imageRef: image.imageRef,
    imageName: image.imageName,
    dockerHost: programDockerHost(),
    registry: registry
      ? pulumi.output(registry.auth).apply((a: { username: string; password: string } | undefined) =>
        ({ address: registry.address, auth: a ? { username: a.username, password: a.password } : undefined }))
      : undefined,
    privateKeyPem,
    database: env.supplyChain.database,
  }, { parent: image });
  return {
    signing: publicKeyPem.apply((pem) => (pem ? { publicKey: pem, fingerprint: keyFingerprint(pem) } : undefined)),
    supplyChain: attestation.summary,
  };
}

/** The key prod trusts: pinned in its config (supplyChain.publicKey), else the one its source stack publishes. */
async function trustedKey(env: EnvironmentConfig, source: string): Promise<TrustedKey> {
  if (env.supplyChain.publicKey) return { publicKeyPem: env.supplyChain.publicKey, source: "supplyChain.publicKey" };
  const upstream = new pulumi.StackReference(`${stackReferenceName(source)}-signing`, { name: stackReferenceName(source) });
  const signing = (await upstream.getOutputDetails("signing")).value as { publicKey?: string } | undefined;
  if (!signing?.publicKey) {
    throw new Error(`environment '${env.name}' verifies the signature of what it promotes, but stack '${source}' publishes no signing key: ` +
      `run 'pulumi up' on '${source}' (or 'fleet rollout'), which signs its image, first`);
  }
  if (env.tier === "production") {
    pulumi.log.warn(`${env.name} trusts the signing key stack '${source}' publishes (${keyFingerprint(signing.publicKey).slice(0, 16)}): ` +
      `pin it in ${env.name}'s own config with 'fleet signing-key ${source} --trust ${env.name}'`);
  }
  return { publicKeyPem: signing.publicKey, source: `stack ${source}` };
}

export async function environmentProgram(env: EnvironmentConfig, projectDir: string): Promise<Record<string, unknown>> {
  const registry = registryAccount(env);
  // customer stacks read it to pull on every node (a secret output: never in plain text in the state)
  const registryOutputs = registry?.auth ? { registryAuth: registry.auth } : {};
  if (env.image.mode === "build") {
    const edge = edgeProxy(env, projectDir);
    const logs = logCollectors(env, projectDir);
    const image = new HardenedImage(env.name, {
      image: env.image,
      app: env.app,
      projectDir,
      workDir: path.join(projectDir, ".fleet", "build", env.name),
      registry,
      baseDigest: baseDigestOf(new Dockerode(dockerodeOptions(programDockerHost() || undefined)), env.image.base),
    });
    const supplyChain = attestImages(env, image, registry);
    return {
      role: "environment",
      settings: env,
      edge,
      ...logs,
      ...registryOutputs,
      image: pulumi.all([image.imageRef, image.imageName]).apply(([ref, name]) => ({
        ref, name, version: image.version, revision: image.revision,
      })),
      ...supplyChain,
    };
  }
  // every check of the promoted image comes before any resource: a refused image leaves nothing made or changed
  const promoted = await promotedImage(env, projectDir, registry);
  const edge = edgeProxy(env, projectDir);
  const logs = logCollectors(env, projectDir);
  return { role: "environment", settings: env, edge, ...logs, ...registryOutputs, ...promoted };
}

/**
 * The image a promoting environment runs, checked: the hardening profile and pinned base
 * (imageCheck.ts), then the signature by the trusted key and the vulnerability gate (src/supplyChain).
 */
async function promotedImage(env: EnvironmentConfig, projectDir: string, registry: ReturnType<typeof registryAccount>) {
  if (env.image.mode !== "promote") throw new Error("promotedImage: the environment builds its image");
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
  const engine = new Dockerode(dockerodeOptions(programDockerHost() || undefined));
  const auth = registry?.auth ? await outputValue(registry.auth) : undefined;
  const image = await checkPromotableImage(ref, `stack ${source}`, {
    engine,
    // promoted by repository digest, the image's base must be the one this environment pins
    pinnedBase: env.registry ? env.image.base : undefined,
    auth,
  });
  // signed by the trusted key, and no finding at or above supplyChain.failOn that is not waived
  const supplyChain = await checkPromotionSupplyChain({
    ref: image.ref, engine, dockerHost: programDockerHost() || undefined, projectDir,
    registry: registry ? { address: registry.address, auth: auth ? { username: auth.username, password: auth.password } : undefined } : undefined,
    config: { ...env.supplyChain, database: databaseSetting(env, projectDir) },
    trust: await trustedKey(env, source),
    log: (line) => pulumi.log.info(line),
  });
  return { image: { ...image, promotedFrom: source }, supplyChain };
}
