/**
 * The supply chain from the operator's side: the SBOM of what an environment (or one customer) runs,
 * the signing key a build environment publishes and pinning it in a promoting environment, the
 * scanner's database, the findings of each image (fleet list, the audit), and whether the pinned
 * base has a newer digest than the one the running image was built from.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Document, parse } from "yaml";
import { ENVIRONMENT_KEY } from "../config/load";
import { parseCustomerTarget, parseEnvironmentName } from "../config/targets";
import { LABEL_BASE, LABEL_BASE_DIGEST } from "../hardening/names";
import { stackFile, writeFileAtomic } from "../project/stackFiles";
import { readStack, outputImage } from "../pulumi/stackState";
import { readStackSecret } from "../pulumi/stacks";
import { parseImageRef, readLocal, readSbom } from "../supplyChain/attachments";
import { registryClient, storeKey, type RegistryAccess, type ScanRecord } from "../supplyChain/attest";
import { databaseDir, databaseStatus, updateDatabase } from "../supplyChain/database";
import { formatCounts } from "../supplyChain/findings";
import { RegistryClient, registryScheme } from "../supplyChain/ociRegistry";
import { keyFingerprint, parsePublicKey } from "../supplyChain/signature";
import type { Environment } from "./environment";

/** The registry account of an environment, its password read from the stack's secrets. */
async function registryAccess(environment: Environment): Promise<RegistryAccess | undefined> {
  const registry = environment.config.registry;
  if (!registry) return undefined;
  if (!registry.username) return { address: registry.address };
  const target = parseEnvironmentName(environment.name, "--env");
  const password = await readStackSecret(environment.ctx, target, "hardened-fleet:registryPassword", environment.stackSettings(target));
  return { address: registry.address, auth: { username: registry.username, password: password ?? "" } };
}

/** The image an environment runs (its stack output), or one customer's (its own stack output). */
export async function runningImage(environment: Environment, customer?: string): Promise<string> {
  const stack = customer ? parseCustomerTarget(customer, environment.name, { customer: "--customer" }).stack : environment.name;
  const state = await readStack(environment.ctx, stack);
  const ref = state ? outputImage(state.outputs) : undefined;
  if (!ref) {
    throw new Error(customer
      ? `customer '${customer}' has no deployment in '${environment.name}': provision it first (fleet provision ${customer} --env ${environment.name})`
      : `environment '${environment.name}' runs no image yet: run 'fleet rollout' (or 'pulumi up -s ${environment.name}') first`);
  }
  return ref;
}

/** `fleet sbom`: the SBOM kept beside the image (registry tag sha256-<hex>.sbom, or fleet's store). */
export async function sbomFor(environment: Environment, customer?: string): Promise<{ imageRef: string; sbom: unknown; storedIn: string }> {
  const imageRef = await runningImage(environment, customer);
  const location = parseImageRef(imageRef);
  const access = location.registry ? await registryAccess(environment) : undefined;
  if (location.registry && access) {
    const found = await readSbom(await registryClient(environment.engine(), access), location.repo!, location.digest);
    if (found) return { imageRef, sbom: found.sbom, storedIn: `registry ${location.registry}/${location.repo}` };
  }
  const local = readLocal(environment.ctx.projectDir, storeKey(location), "sbom");
  if (local) return { imageRef, sbom: local, storedIn: "fleet's store (.fleet/supply-chain)" };
  throw new Error(`image ${imageRef} has no SBOM ${location.registry ? `in registry ${location.registry}` : "in fleet's store"}: ` +
    "images built before fleet made SBOMs have none; roll out a new build through staging (fleet rollout)");
}

/** The findings fleet recorded for an image (staging's scan, or a promotion's), or undefined when it was never scanned here. */
export function recordedFindings(projectDir: string, imageRef: string): ScanRecord | undefined {
  try {
    return readLocal(projectDir, storeKey(parseImageRef(imageRef)), "findings") as ScanRecord | undefined;
  } catch {
    return undefined;
  }
}

/** A short findings column: "0", "3 (1 critical)", or "not scanned". Pure. */
export function findingsColumn(record: ScanRecord | undefined): string {
  if (!record) return "not scanned";
  const total = record.findings.length;
  if (total === 0) return "0";
  const worst = formatCounts(record.counts);
  return `${total} (${worst})`;
}

/** The public key a build environment signs with (its stack output `signing`). */
export async function signingKeyOf(environment: Environment): Promise<{ publicKey: string; fingerprint: string }> {
  const state = await readStack(environment.ctx, environment.name);
  const signing = state?.outputs.signing as { publicKey?: string } | undefined;
  if (!signing?.publicKey) {
    throw new Error(`environment '${environment.name}' publishes no signing key: only a build environment (image.mode: build) signs, ` +
      `and only once deployed (fleet rollout, or pulumi up -s ${environment.name})`);
  }
  return { publicKey: signing.publicKey, fingerprint: keyFingerprint(signing.publicKey) };
}

/** Pins `publicKey` as supplyChain.publicKey in the promoting environment's stack file, keeping the rest. */
export function pinPublicKey(promoting: Environment, publicKey: string): void {
  parsePublicKey(publicKey);
  if (promoting.config.image.mode !== "promote") {
    throw new Error(`environment '${promoting.name}' builds its own images (image.mode: build): only a promoting environment verifies signatures`);
  }
  const file = stackFile(promoting.ctx.projectDir, promoting.name);
  const doc = new Document(parse(fs.readFileSync(file, "utf8")));
  doc.setIn(["config", ENVIRONMENT_KEY, "supplyChain", "publicKey"], publicKey.trim() + "\n");
  writeFileAtomic(file, doc.toString());
}

/** `fleet scan-db status|update`: the database an environment's scans use. */
export function scannerDatabase(environment: Environment): { dir: string; status: ReturnType<typeof databaseStatus> } {
  const setting = environment.config.supplyChain.database;
  const dir = databaseDir(setting === undefined ? undefined : path.resolve(environment.ctx.projectDir, setting));
  return { dir, status: databaseStatus(dir) };
}

export async function updateScannerDatabase(environment: Environment, log: (line: string) => void): Promise<void> {
  if (environment.config.supplyChain.database !== undefined) {
    throw new Error(`environment '${environment.name}' scans with the database it names (supplyChain.database: ${environment.config.supplyChain.database}): ` +
      "replace that file with a newer one, or remove the setting to use the user's cache, which this command fills");
  }
  await updateDatabase(scannerDatabase(environment).dir, log);
}

export interface BaseStatus {
  environment: string;
  base: string;
  /** the base's digest the running image was built from (its label) */
  builtFrom?: string;
  /** the base's digest now: in its registry, or on the engine for a local base */
  newest?: string;
  state: "current" | "stale" | "unknown";
  note?: string;
}

/** Compares the digest an image was built from with the base's newest. Pure. */
export function baseState(builtFrom: string | undefined, newest: string | undefined): BaseStatus["state"] {
  if (!builtFrom || !newest) return "unknown";
  return builtFrom === newest ? "current" : "stale";
}

/** The digest `base` (name:tag, maybe @digest) has now: the registry's manifest digest when it names one, else the engine's image ID. */
async function newestBaseDigest(environment: Environment, base: string): Promise<{ digest?: string; note?: string }> {
  const name = base.split("@")[0]!;
  const slash = name.indexOf("/");
  const host = slash > 0 ? name.slice(0, slash) : "";
  if (/[.:]/.test(host) || host === "localhost") {
    const rest = name.slice(slash + 1);
    const colon = rest.lastIndexOf(":");
    const repo = colon > 0 ? rest.slice(0, colon) : rest;
    const tag = colon > 0 ? rest.slice(colon + 1) : "latest";
    try {
      const client = new RegistryClient({ address: host, scheme: await registryScheme(environment.engine(), host) });
      return { digest: (await client.getManifest(repo, tag)).digest };
    } catch (err) {
      return { note: `registry ${host}: ${(err as Error).message.split("\n")[0]}` };
    }
  }
  try {
    return { digest: (await environment.engine().getImage(name).inspect()).Id };
  } catch {
    return { note: `${name} is not on the engine and names no registry` };
  }
}

/**
 * `fleet bases`: whether the base an environment's running image was built from (its labels: the
 * base's name and digest at build time) has a newer digest now; for an environment that builds, its
 * configured base when it runs nothing yet.
 */
export async function baseStatus(environment: Environment): Promise<BaseStatus> {
  const configured = environment.config.image.mode === "build" ? environment.config.image.base : undefined;
  const ref = await runningImage(environment).catch(() => undefined);
  let base = configured;
  let builtFrom: string | undefined;
  let note: string | undefined;
  if (ref) {
    try {
      const labels = (await environment.engine().getImage(ref).inspect()).Config.Labels ?? {};
      base = labels[LABEL_BASE] ?? base;
      builtFrom = labels[LABEL_BASE_DIGEST] && labels[LABEL_BASE_DIGEST] !== "unknown" ? labels[LABEL_BASE_DIGEST] : undefined;
      if (!builtFrom) note = `its image has no ${LABEL_BASE_DIGEST} label (built before fleet recorded it, or from an operator's Dockerfile)`;
    } catch {
      note = `its image ${ref} is not on this engine`;
    }
  } else note = "it runs no image yet";
  if (!base) return { environment: environment.name, base: "-", state: "unknown", note };
  const newest = await newestBaseDigest(environment, base);
  return { environment: environment.name, base, builtFrom, newest: newest.digest, state: baseState(builtFrom, newest.digest), note: note ?? newest.note };
}
