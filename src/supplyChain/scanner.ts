/**
 * An image's SBOM and vulnerabilities, by trivy reading the image from the Docker engine
 * (`--image-src docker`, the engine at DOCKER_HOST) and scanning offline: no database download, no
 * Java database, no version check, no telemetry, no online lookups. trivy's layer cache is kept in
 * memory, so nothing but the database is read from `cacheDir` and several scans may share it.
 */
import { databaseStatus, DATABASE_HINT } from "./database";
import { parseTrivyReport, type Finding } from "./findings";
import { runTrivy } from "./trivy";

export { trivyPath, TRIVY_VERSION } from "./trivy";

export interface ScanOptions {
  /** the engine holding the image (DOCKER_HOST syntax); default: the caller's DOCKER_HOST or the local socket */
  dockerHost?: string;
  /** trivy's --cache-dir: the database is <cacheDir>/db/trivy.db (see database.ts) */
  cacheDir: string;
  env?: NodeJS.ProcessEnv;
}

/** The flags every run here has (trivy 0.74). */
export function offlineArgs(cacheDir: string): string[] {
  return [
    "--image-src", "docker",
    "--cache-dir", cacheDir,
    "--cache-backend", "memory",
    "--skip-db-update",
    "--skip-java-db-update",
    "--offline-scan",
    "--skip-version-check",
    "--disable-telemetry",
    "--no-progress",
    "--timeout", "10m",
  ];
}

/** `trivy image` for a CycloneDX SBOM of `imageRef`: packages only (trivy leaves vulnerabilities out of it unless asked). */
export function sbomArgs(imageRef: string, cacheDir: string): string[] {
  return ["image", ...offlineArgs(cacheDir), "--format", "cyclonedx", "--", imageRef];
}

/** `trivy image` for the vulnerabilities of `imageRef`'s OS packages and language libraries, as JSON. */
export function scanArgs(imageRef: string, cacheDir: string): string[] {
  return ["image", ...offlineArgs(cacheDir), "--scanners", "vuln", "--pkg-types", "os,library", "--format", "json", "--", imageRef];
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`trivy's ${what} is not JSON (${(err as Error).message}): ${text.slice(0, 200)}`);
  }
}

/** The CycloneDX JSON (bomFormat "CycloneDX") of the image `imageRef` on the engine. */
export async function sbomOf(imageRef: string, opts: ScanOptions): Promise<Record<string, unknown>> {
  const out = await runTrivy(sbomArgs(imageRef, opts.cacheDir), { dockerHost: opts.dockerHost, env: opts.env });
  const bom = parseJson(out, `SBOM of ${imageRef}`) as Record<string, unknown> | null;
  if (!bom || bom.bomFormat !== "CycloneDX") throw new Error(`trivy's SBOM of ${imageRef} is not a CycloneDX document: ${out.slice(0, 200)}`);
  return bom;
}

/**
 * The findings (worst first) of the image `imageRef` on the engine, from the database in
 * `opts.cacheDir`; an error naming the way out when there is none.
 */
export async function scanImage(imageRef: string, opts: ScanOptions): Promise<Finding[]> {
  const db = databaseStatus(opts.cacheDir);
  if (!db.present) throw new Error(`cannot scan ${imageRef} for vulnerabilities: ${db.problem}; ${DATABASE_HINT}`);
  const out = await runTrivy(scanArgs(imageRef, opts.cacheDir), { dockerHost: opts.dockerHost, env: opts.env });
  return parseTrivyReport(parseJson(out, `report on ${imageRef}`));
}
