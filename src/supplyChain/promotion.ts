/**
 * What a promoting environment (prod) checks before it runs an image, after the hardening profile
 * (src/program/imageCheck.ts): the image's digest carries a signature by the trusted key, and a scan
 * with this environment's database finds nothing at or above `supplyChain.failOn` that is not waived.
 * Either refusal names the image and the fix; nothing is deployed.
 */
import type Dockerode from "dockerode";
import type { SupplyChainConfig } from "../config/schema";
import { parseImageRef, readLocal, readSignatures, writeLocal } from "./attachments";
import { registryClient, scanWithDatabase, storeKey, type RegistryAccess, type ScanRecord } from "./attest";
import { databaseDir, databaseStatus } from "./database";
import type { Severity, SeverityCounts } from "./findings";
import { evaluateFindings, formatGateRefusal, type GatePolicy } from "./gate";
import { keyFingerprint, verifyImage } from "./signature";

/** The key a signature must verify with, and where it was configured. */
export interface TrustedKey {
  publicKeyPem: string;
  /** "supplyChain.publicKey" (pinned in this environment's config), or "stack <name>" (what the source publishes) */
  source: string;
}

export interface PromotionRequest {
  ref: string;
  engine: Dockerode;
  dockerHost?: string;
  /** this environment's registry: where the signature of a repository digest is */
  registry?: RegistryAccess;
  projectDir: string;
  config: SupplyChainConfig;
  trust: TrustedKey;
  today?: Date;
  log?: (line: string) => void;
}

/** What a promoting stack publishes (its stack output `supplyChain`). */
export interface PromotionEvidence {
  signature: { verified: true; keyFingerprint: string; trust: string };
  scan: { scanned: boolean; databaseUpdatedAt?: string; counts?: SeverityCounts; failOn: string; waived: { id: string; package: string; expires: string }[] };
}

/** The gate policy of a config (its severities are lowercase in YAML, the scanner's are uppercase). Pure. */
export function gatePolicy(config: SupplyChainConfig): GatePolicy {
  return {
    failOn: config.failOn === "none" ? "none" : config.failOn.toUpperCase() as Severity,
    allow: config.allow.map((w) => ({ id: w.id, package: w.package, reason: w.reason, expires: w.expires })),
  };
}

/** A scan of `ref` with the database now configured: the one in the store when it used the same database, else a new one. */
async function findingsOf(req: PromotionRequest): Promise<ScanRecord | { note: string }> {
  const key = storeKey(parseImageRef(req.ref));
  const status = databaseStatus(databaseDir(req.config.database));
  const kept = readLocal(req.projectDir, key, "findings") as ScanRecord | undefined;
  if (kept && status.present && kept.databaseUpdatedAt === status.updatedAt?.toISOString()) return kept;
  const scan = await scanWithDatabase(req.ref, { dockerHost: req.dockerHost, database: req.config.database });
  if (!scan.record) return { note: scan.note! };
  const record: ScanRecord = { imageRef: req.ref, ...scan.record };
  writeLocal(req.projectDir, key, "findings", record);
  return record;
}

export async function checkPromotionSupplyChain(req: PromotionRequest): Promise<PromotionEvidence> {
  const log = req.log ?? (() => {});
  const location = parseImageRef(req.ref);
  const records = location.registry && req.registry
    ? await readSignatures(await registryClient(req.engine, req.registry), location.repo!, location.digest)
    : readLocal(req.projectDir, storeKey(location), "signatures") ?? [];
  const verdict = verifyImage(req.trust.publicKeyPem, location.digest, records);
  const fingerprint = keyFingerprint(req.trust.publicKeyPem);
  if (!verdict.ok) {
    throw new Error(`image ${req.ref} cannot be promoted: ${verdict.message.replace(/^image \S+ /, "it ")} ` +
      `(trusted key ${fingerprint.slice(0, 16)}, from ${req.trust.source}; signatures looked up in ` +
      `${location.registry ? `registry ${location.registry}/${location.repo}` : "fleet's store .fleet/supply-chain"})`);
  }
  log(`supply chain: ${location.digest.slice(0, 19)} is signed by the trusted key ${fingerprint.slice(0, 16)} (${req.trust.source})`);

  const policy = gatePolicy(req.config);
  const scan = await findingsOf(req);
  if ("note" in scan) {
    if (policy.failOn !== "none") {
      throw new Error(`image ${req.ref} cannot be promoted: it could not be scanned for vulnerabilities: ${scan.note} ` +
        "(or set supplyChain.failOn: none to promote unscanned images, outside production)");
    }
    return { signature: { verified: true, keyFingerprint: fingerprint, trust: req.trust.source },
      scan: { scanned: false, failOn: "none", waived: [] } };
  }
  const result = evaluateFindings(scan.findings, policy, req.today ?? new Date());
  if (!result.ok) throw new Error(formatGateRefusal(req.ref, result));
  return {
    signature: { verified: true, keyFingerprint: fingerprint, trust: req.trust.source },
    scan: {
      scanned: true, databaseUpdatedAt: scan.databaseUpdatedAt, counts: scan.counts, failOn: req.config.failOn,
      waived: result.waived.map((w) => ({ id: w.finding.id, package: w.finding.package, expires: w.waiver.expires })),
    },
  };
}
