/**
 * The vulnerability scanner's database: where it lives and how it gets there. trivy reads
 * <dir>/db/trivy.db and <dir>/db/metadata.json of its --cache-dir. By default that is the user's
 * cache (${HARDENED_FLEET_CACHE:-~/.cache/hardened-fleet}/trivy-db), downloaded by trivy when the
 * machine is online; offline the operator provides one (`supplyChain.database`): a directory in that
 * layout, or a db.tar.gz as trivy's database is published (trivy.db and metadata.json), unpacked
 * here into the cache under its sha256.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { fleetCacheDir, runTrivy } from "./trivy";

/** trivy-db's schema version that trivy 0.74 reads */
export const DB_SCHEMA_VERSION = 2;

const PROVIDE_HINT = "provide one with supplyChain.database (a directory holding db/trivy.db and db/metadata.json, or a trivy db.tar.gz)";
export const DATABASE_HINT = `${PROVIDE_HINT}, or download one while online (\`npm run fleet -- scan-db update\`)`;

function sha256File(file: string): string {
  const hash = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    let n: number;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/** Unpacks trivy.db and metadata.json of `tarball` into <cache>/trivy-db-provided/<sha256>/db, once. */
function unpackProvided(tarball: string, env: NodeJS.ProcessEnv): string {
  const sha = sha256File(tarball);
  const dir = path.join(fleetCacheDir(env), "trivy-db-provided", sha.slice(0, 32));
  if (fs.existsSync(path.join(dir, "db", "trivy.db")) && fs.existsSync(path.join(dir, "db", "metadata.json"))) return dir;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.unpack-`);
  try {
    fs.mkdirSync(path.join(tmp, "db"));
    // only the two members by name: nothing else of the archive is written
    const r = spawnSync("tar", ["-xzf", tarball, "-C", path.join(tmp, "db"), "--no-same-owner", "--no-same-permissions", "trivy.db", "metadata.json"], { encoding: "utf8" });
    if (r.error || r.status !== 0) {
      throw new Error(`supplyChain.database: ${tarball} is not a trivy database archive (a .tar.gz holding trivy.db and metadata.json): ${(r.error?.message ?? r.stderr).trim()}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/**
 * The directory to give trivy as --cache-dir. `setting` is supplyChain.database (relative to
 * `baseDir`): a directory (holding db/, or the db/ directory itself) or a .tar.gz file; unset: the
 * user's cache, which may not hold a database yet (databaseStatus says).
 */
export function databaseDir(setting: string | undefined, env: NodeJS.ProcessEnv = process.env, baseDir = process.cwd()): string {
  if (setting === undefined || setting === "") return path.join(fleetCacheDir(env), "trivy-db");
  const p = path.resolve(baseDir, setting);
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new Error(`supplyChain.database: ${p} does not exist; ${DATABASE_HINT}`);
  }
  if (st.isFile()) return unpackProvided(p, env);
  if (fs.existsSync(path.join(p, "db", "trivy.db"))) return p;
  if (path.basename(p) === "db" && fs.existsSync(path.join(p, "trivy.db"))) return path.dirname(p);
  throw new Error(`supplyChain.database: ${p} holds no trivy database (expected ${path.join(p, "db", "trivy.db")} and metadata.json beside it)`);
}

export interface DatabaseStatus {
  present: boolean;
  /** the database file */
  path: string;
  updatedAt?: Date;
  nextUpdate?: Date;
  downloadedAt?: Date;
  /** why it cannot be used, when not present */
  problem?: string;
}

function date(v: unknown): Date | undefined {
  if (typeof v !== "string") return undefined;
  const d = new Date(v);
  // trivy writes Go's zero time (0001-01-01) for a time it does not know
  return Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1970 ? undefined : d;
}

/** What the database in `dir` (a trivy --cache-dir) is: there or not, and as of when. */
export function databaseStatus(dir: string): DatabaseStatus {
  const file = path.join(dir, "db", "trivy.db");
  const metaFile = path.join(dir, "db", "metadata.json");
  if (!fs.existsSync(file)) return { present: false, path: file, problem: `no vulnerability database at ${file}` };
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(fs.readFileSync(metaFile, "utf8")) as Record<string, unknown>;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "is missing" : `cannot be read: ${(err as Error).message}`;
    return { present: false, path: file, problem: `${metaFile} ${why} (trivy needs it beside trivy.db)` };
  }
  const status: DatabaseStatus = { present: true, path: file };
  const updatedAt = date(meta.UpdatedAt);
  const nextUpdate = date(meta.NextUpdate);
  const downloadedAt = date(meta.DownloadedAt);
  if (updatedAt) status.updatedAt = updatedAt;
  if (nextUpdate) status.nextUpdate = nextUpdate;
  if (downloadedAt) status.downloadedAt = downloadedAt;
  if (meta.Version !== DB_SCHEMA_VERSION) {
    return { ...status, present: false, problem: `${file} has schema version ${String(meta.Version)}; trivy reads version ${DB_SCHEMA_VERSION}` };
  }
  return status;
}

/** "updated 2026-01-02 (next update due 2026-01-03)", for `fleet` output. */
export function describeDatabase(s: DatabaseStatus): string {
  if (!s.present) return s.problem ?? `no vulnerability database at ${s.path}`;
  const day = (d: Date) => d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  return `${s.path}: updated ${s.updatedAt ? day(s.updatedAt) : "at an unknown time"}${s.nextUpdate ? ` (next update due ${day(s.nextUpdate)})` : ""}`;
}

/**
 * Downloads the current database into `dir` (trivy --download-db-only, from trivy's default
 * registry). Needs the internet; the error says what to do without it.
 */
export async function updateDatabase(dir: string, log: (line: string) => void = () => {}): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  try {
    await runTrivy(["image", "--download-db-only", "--cache-dir", dir, "--no-progress", "--skip-version-check", "--disable-telemetry"], {
      onStderrLine: log,
      timeoutMs: 15 * 60_000,
    });
  } catch (err) {
    throw new Error(`could not download the vulnerability database (offline?): ${PROVIDE_HINT}.\n${(err as Error).message}`);
  }
}
