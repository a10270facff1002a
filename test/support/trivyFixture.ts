/**
 * The tests' vulnerability database: trivy's own format (written with trivy-db's Go packages by
 * test/support/trivy-fixture-db, which scripts/ensure-trivy.sh builds) holding one real advisory,
 * CVE-2023-45853 (zlib's MiniZip, NVD CVSS 9.8) for zlib in Debian 12: Debian lists bookworm's
 * zlib 1:1.2.13.dfsg-1 as affected and will not fix it there, and the bases carry that zlib1g. So
 * trivy's real matching finds it in every image built on them.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import type { Finding } from "../../src/supplyChain/findings";
import { trivyBinDir } from "../../src/supplyChain/trivy";

/** What a scan with the fixture database reports for the bases' zlib1g. */
export const FIXTURE_ADVISORY = {
  id: "CVE-2023-45853",
  /** the binary package trivy names (Debian advisories are per source package: zlib) */
  package: "zlib1g",
  severity: "CRITICAL",
  status: "will_not_fix",
} as const satisfies Partial<Finding>;

export function fixtureWriterPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(trivyBinDir(env), "trivy-fixture-db");
}

/** Writes the fixture database into `cacheDir` (<cacheDir>/db/trivy.db and metadata.json), replacing one there. */
export async function buildFixtureDatabase(cacheDir: string): Promise<void> {
  const writer = fixtureWriterPath();
  if (!fs.existsSync(writer)) throw new Error(`${writer} is missing: run scripts/ensure-trivy.sh (npm run setup does it)`);
  try {
    await promisify(execFile)(writer, [cacheDir]);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${writer} ${cacheDir} failed: ${(e.stderr || e.message).trim()}`);
  }
}
