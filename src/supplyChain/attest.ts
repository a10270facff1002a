/**
 * What the build environment (staging) does with every image it builds, once per image: an SBOM, a
 * vulnerability scan against the scanner's database, and a signature of the image's digest with the
 * environment's signing key. Kept beside the image: in the registry (cosign's tags sha256-<hex>.sig
 * and .sbom) when the environment has one, in fleet's store (.fleet/supply-chain/<hex>/) otherwise;
 * the findings always in the store, where `fleet list` and the audit read them.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type Dockerode from "dockerode";
import { addLocalSignature, attachSbom, attachSignature, parseImageRef, writeLocal, type ImageLocation } from "./attachments";
import { databaseDir, databaseStatus } from "./database";
import { countBySeverity, type Finding, type SeverityCounts } from "./findings";
import { RegistryClient, registryScheme, type RegistryAuth } from "./ociRegistry";
import { scanImage, sbomOf } from "./scanner";
import { keyFingerprint, publicKeyOf, signImage } from "./signature";

export interface RegistryAccess {
  address: string;
  auth?: RegistryAuth;
}

/** The findings of one scan, as the store keeps them (findings.json) and `fleet list` reads them. */
export interface ScanRecord {
  imageRef: string;
  scannedAt: string;
  /** the database's own build time (metadata.json UpdatedAt): a newer database means a new scan */
  databaseUpdatedAt?: string;
  counts: SeverityCounts;
  findings: Finding[];
}

/** What a stack publishes of its image's supply chain (the stack output `supplyChain`). */
export interface AttestationSummary {
  imageRef: string;
  sbom: { format: string; packages: number; sha256: string; storedIn: string };
  scan: { scanned: boolean; databaseUpdatedAt?: string; counts?: SeverityCounts; note?: string };
  signature: { keyFingerprint: string; storedIn: string };
}

export interface AttestRequest {
  imageRef: string;
  /** the repository:tag the image was built as (signed as its docker-reference when it is in no registry) */
  imageName: string;
  engine: Dockerode;
  /** the engine's address for the scanner (DOCKER_HOST form; undefined: the local socket) */
  dockerHost?: string;
  registry?: RegistryAccess;
  privateKeyPem: string;
  /** supplyChain.database */
  database?: string;
  projectDir: string;
  log?: (line: string) => void;
}

/** The hex part of the digest fleet keys its store by: the repository digest, or the local image ID. */
export function storeKey(location: ImageLocation): string {
  return location.digest;
}

/** A registry client for `address`, over HTTPS unless the engine treats the registry as insecure (plain HTTP). */
export async function registryClient(engine: Dockerode, access: RegistryAccess): Promise<RegistryClient> {
  return new RegistryClient({ address: access.address, scheme: await registryScheme(engine, access.address), auth: access.auth });
}

async function withScratchDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-sbom-"));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Counts the SBOM's components (CycloneDX `components`, SPDX `packages`). Pure. */
export function sbomPackageCount(sbom: Record<string, unknown>): number {
  const list = (sbom.components ?? sbom.packages) as unknown[] | undefined;
  return Array.isArray(list) ? list.length : 0;
}

/** Scans `imageRef` with the database at `dir`, or says why it was not scanned. */
export async function scanWithDatabase(imageRef: string, opts: { dockerHost?: string; database?: string }):
  Promise<{ record?: Omit<ScanRecord, "imageRef">; note?: string }> {
  let dir: string;
  try {
    dir = databaseDir(opts.database);
  } catch (err) {
    return { note: (err as Error).message }; // a configured database that is not there (yet)
  }
  const status = databaseStatus(dir);
  if (!status.present) {
    return { note: `${status.problem ?? `no vulnerability database at ${status.path}`}: run 'fleet scan-db update' where the scanner can reach its registry, or set supplyChain.database` };
  }
  const findings = await scanImage(imageRef, { dockerHost: opts.dockerHost, cacheDir: dir });
  return { record: { scannedAt: new Date().toISOString(), databaseUpdatedAt: status.updatedAt?.toISOString(), counts: countBySeverity(findings), findings } };
}

export async function attestImage(req: AttestRequest): Promise<AttestationSummary> {
  const log = req.log ?? (() => {});
  const location = parseImageRef(req.imageRef);
  const key = storeKey(location);
  const client = location.registry && req.registry ? await registryClient(req.engine, req.registry) : undefined;

  log(`supply chain: SBOM of ${req.imageRef}`);
  // the SBOM needs no database: a private, empty cache dir for trivy
  const sbom = await withScratchDir((cacheDir) => sbomOf(req.imageRef, { dockerHost: req.dockerHost, cacheDir }));
  const sbomText = JSON.stringify(sbom);
  const sbomSha = createHash("sha256").update(sbomText).digest("hex");
  if (client) await attachSbom(client, location.repo!, location.digest, sbom);
  else writeLocal(req.projectDir, key, "sbom", sbom);

  log(`supply chain: vulnerability scan of ${req.imageRef}`);
  const scan = await scanWithDatabase(req.imageRef, { dockerHost: req.dockerHost, database: req.database });
  if (scan.record) writeLocal(req.projectDir, key, "findings", { imageRef: req.imageRef, ...scan.record } satisfies ScanRecord);

  // the docker-reference a verifier compares: the repository in a registry, else the local name
  const reference = location.registry ? `${location.registry}/${location.repo}` : req.imageName;
  const record = signImage(req.privateKeyPem, reference, location.digest, { "dev.hardened-fleet/sbom-sha256": sbomSha });
  if (client) await attachSignature(client, location.repo!, location.digest, record);
  else addLocalSignature(req.projectDir, key, record);
  const storedIn = client ? `registry ${req.registry!.address}/${location.repo}` : "fleet's store (.fleet/supply-chain)";
  log(`supply chain: signed ${location.digest.slice(0, 19)} (key ${keyFingerprint(publicKeyOf(req.privateKeyPem)).slice(0, 16)})`);
  return {
    imageRef: req.imageRef,
    sbom: { format: "CycloneDX JSON", packages: sbomPackageCount(sbom), sha256: sbomSha, storedIn },
    scan: scan.record
      ? { scanned: true, databaseUpdatedAt: scan.record.databaseUpdatedAt, counts: scan.record.counts }
      : { scanned: false, note: scan.note },
    signature: { keyFingerprint: keyFingerprint(publicKeyOf(req.privateKeyPem)), storedIn },
  };
}
