/**
 * The demo's supply chain: the one-advisory vulnerability database its stack files name (these
 * machines cannot download trivy's), and what staging made of its image (SBOM, scan, signature) with
 * the verdict prod's gate gives it: the same check `pulumi up -s prod` runs before it promotes.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { FleetContext } from "../src/project/context";
import { engineFor } from "../src/engine/connection";
import { loadEnvironment } from "../src/fleet/environment";
import { sbomFor, signingKeyOf } from "../src/fleet/supplyChain";
import { readStack } from "../src/pulumi/stackState";
import type { AttestationSummary } from "../src/supplyChain/attest";
import { formatCounts } from "../src/supplyChain/findings";
import { checkPromotionSupplyChain } from "../src/supplyChain/promotion";
import { trivyBinDir } from "../src/supplyChain/trivy";

/** Where Pulumi.staging.yaml and Pulumi.prod.yaml point supplyChain.database. */
export const DEMO_DATABASE = path.join(".fleet", "demo", "trivy-db");

/**
 * Writes the demo's database when it is missing: one real advisory (CVE-2023-45853, zlib's minizip,
 * which Debian 12 will not fix), in trivy's own format, by the writer scripts/ensure-trivy.sh builds
 * (test/support/trivy-fixture-db). It shows the gate at work; it says nothing of the image's real state.
 */
export function ensureDemoDatabase(projectDir: string): string {
  const dir = path.join(projectDir, DEMO_DATABASE);
  if (fs.existsSync(path.join(dir, "db", "metadata.json"))) return dir;
  const writer = path.join(trivyBinDir(), "trivy-fixture-db");
  if (!fs.existsSync(writer)) throw new Error(`${writer} is missing: run scripts/ensure-trivy.sh (npm run setup does it)`);
  fs.mkdirSync(dir, { recursive: true });
  execFileSync(writer, [dir], { stdio: ["ignore", "ignore", "inherit"] });
  return dir;
}

export async function supplyChainDemo(ctx: FleetContext): Promise<void> {
  const staging = loadEnvironment(ctx, "staging");
  const outputs = (await readStack(ctx, "staging"))?.outputs ?? {};
  const summary = outputs.supplyChain as AttestationSummary | undefined;
  const image = (outputs.image as { ref?: string } | undefined)?.ref;
  if (!summary || !image) {
    console.log("\nsupply chain: staging has published no attestation of its image");
    process.exitCode = 1;
    return;
  }
  const sbom = (await sbomFor(staging)).sbom as { components?: { name: string; version?: string }[] };
  const named = (n: string) => sbom.components?.find((c) => c.name === n);
  const key = await signingKeyOf(staging);
  const lines = [
    "", `supply chain of staging's image ${image.slice(0, 19)} (docs/supply-chain.md):`,
    `  SBOM      CycloneDX, ${summary.sbom.packages} packages (e.g. python3.11-minimal ${named("python3.11-minimal")?.version ?? "?"}, ` +
      `zlib1g ${named("zlib1g")?.version ?? "?"}, gunicorn ${named("gunicorn")?.version ?? "?"}; no shell, apt or dpkg), in ${summary.sbom.storedIn}`,
    `  scan      ${summary.scan.scanned ? (summary.scan.counts ? formatCounts(summary.scan.counts) : "-") : `not scanned: ${summary.scan.note}`} ` +
      "(trivy, against the demo's database of one real advisory: it shows the gate at work, not the image's real state)",
    `  signature ECDSA P-256, key ${key.fingerprint.slice(0, 16)} (a secret in staging's state), in ${summary.signature.storedIn}`,
  ];
  // what prod's program checks before it promotes (here with the key staging publishes)
  const prod = loadEnvironment(ctx, "prod");
  const database = prod.config.supplyChain.database === undefined ? undefined : path.resolve(ctx.projectDir, prod.config.supplyChain.database);
  try {
    const evidence = await checkPromotionSupplyChain({
      ref: image, engine: engineFor(ctx.projectDir, "staging"), projectDir: ctx.projectDir,
      config: { ...prod.config.supplyChain, database }, trust: { publicKeyPem: key.publicKey, source: "stack staging" },
    });
    lines.push(`  prod's gate: signature verified; ${evidence.scan.waived.length} finding(s) waived: prod would promote it`);
  } catch (err) {
    lines.push("  prod's gate (what 'pulumi up -s prod' checks first) refuses it:", ...(err as Error).message.split("\n").map((l) => `    ${l}`),
      "  (a waiver with a reason and an expiry date under prod's supplyChain.allow lets it through until then)");
  }
  lines.push("", "try: npm run fleet -- sbom staging | less; npm run fleet -- list --env staging (findings column); npm run fleet -- bases --env staging", "");
  console.log(lines.join("\n"));
}
