/** A throwaway copy of the project with its own file backend, so lifecycle tests never touch the repo's stacks. */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Document, parse } from "yaml";
import { isBuilt } from "../../src/pulumi/build";
import { fleetContext, type FleetContext } from "../../src/pulumi/workspace";
import { projectDir } from "./fixtures";
import { FIXTURE_ADVISORY, fixtureWriterPath } from "./trivyFixture";

const COPY = ["Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml", "index.ts", "tsconfig.json", "package.json",
  "components", "src", "demo", "examples", "scripts"];

export function copyProject(): FleetContext & { root: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "hf-project-"));
  for (const entry of COPY) fs.cpSync(path.join(projectDir, entry), path.join(root, entry), { recursive: true });
  fs.symlinkSync(path.join(projectDir, "node_modules"), path.join(root, "node_modules"));
  // the policy pack, built (timestamps kept: its dist stays newer than its sources, so no copy
  // compiles it again), with its own packages shared
  fs.cpSync(path.join(projectDir, "policies"), path.join(root, "policies"), {
    recursive: true, preserveTimestamps: true, filter: (src) => path.basename(src) !== "node_modules" });
  fs.symlinkSync(path.join(projectDir, "policies", "node_modules"), path.join(root, "policies", "node_modules"));
  // the program as the checkout has it built (npm test runs tsc first), marked newer than the copied
  // sources: no copy compiles it again (about a minute of CPU each). A checkout whose dist/ is stale
  // copies none, and the copy's first deployment compiles its own; a test that edits a source does too.
  if (isBuilt(projectDir)) {
    fs.cpSync(path.join(projectDir, "dist"), path.join(root, "dist"), { recursive: true });
    const now = new Date();
    fs.utimesSync(path.join(root, "dist", "index.js"), now, now);
  }
  const ctx = fleetContext(root, `file://${path.join(root, ".fleet", "state")}`);
  // the demo's backups go to a directory of this host; a suite that tests backups sets its own
  editEnvironment(root, "staging", (e) => { delete e.backup; });
  useFixtureDatabase(root, "staging");
  useFixtureDatabase(root, "prod", { waive: true });
  return { ...ctx, root };
}

/**
 * The tests' vulnerability database (test/support/trivyFixture.ts: one real advisory, which every
 * image on the bases has), made once per checkout in .fleet/test-trivy-db.
 */
export function fixtureDatabaseDir(): string {
  const dir = path.join(projectDir, ".fleet", "test-trivy-db");
  if (fs.existsSync(path.join(dir, "db", "metadata.json"))) return dir;
  // written aside and renamed: suites of two lanes may ask at the same time
  const aside = fs.mkdtempSync(path.join(path.dirname(dir), ".test-trivy-db-"));
  const writer = fixtureWriterPath();
  if (!fs.existsSync(writer)) throw new Error(`${writer} is missing: run scripts/ensure-trivy.sh (npm test does it)`);
  execFileSync(writer, [aside], { stdio: ["ignore", "ignore", "pipe"] });
  try {
    fs.renameSync(aside, dir);
  } catch {
    fs.rmSync(aside, { recursive: true, force: true }); // another suite's is there now
  }
  return dir;
}

/** The fixture advisory's waiver, valid for `days` more days (UTC). */
export function fixtureWaiver(days = 30): { id: string; package: string; reason: string; expires: string } {
  return {
    id: FIXTURE_ADVISORY.id, package: FIXTURE_ADVISORY.package,
    reason: "the tests' fixture advisory: every image built on the bases carries it",
    expires: new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10),
  };
}

/** Scans with the fixture database; with `waive`, its advisory is waived (a promoting environment then passes the gate). */
export function useFixtureDatabase(root: string, stack: string, opts: { waive?: boolean } = {}): void {
  const database = fixtureDatabaseDir();
  editEnvironment(root, stack, (e) => {
    e.supplyChain = { ...e.supplyChain, database, ...(opts.waive ? { allow: [fixtureWaiver()] } : {}) };
  });
}

/** Edits the environment config inside a copied stack file (keeps everything else). */
export function editEnvironment(root: string, stack: string, edit: (env: Record<string, any>) => void): void {
  const file = path.join(root, `Pulumi.${stack}.yaml`);
  const doc = new Document(parse(fs.readFileSync(file, "utf8")));
  const env = doc.getIn(["config", "hardened-fleet:environment"]) as unknown;
  const plain = JSON.parse(JSON.stringify((env as { toJSON(): unknown }).toJSON())) as Record<string, any>;
  edit(plain);
  doc.setIn(["config", "hardened-fleet:environment"], plain);
  fs.writeFileSync(file, doc.toString());
}

/** Lets a copied stack be created with another passphrase than the committed demo one. */
export function dropEncryptionSalt(root: string, stack: string): void {
  const file = path.join(root, `Pulumi.${stack}.yaml`);
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(/^encryptionsalt:.*\n?/m, ""));
}

/**
 * Gives a copied environment an edge proxy of its own (its own name and ports), so a suite never
 * meets the demo's proxy or another suite's; customers answer at https://<id>.<env>.localhost:<httpsPort>.
 */
export function useEdge(root: string, stack: string, name: string, httpsPort: number, httpPort: number): void {
  editEnvironment(root, stack, (e) => {
    e.edge = { ...e.edge, name, domain: `${stack}.localhost`, address: "127.0.0.1", httpsPort, httpPort };
  });
}

/** https://<customer>.<env>.localhost:<port>: where a customer of a copied environment answers. */
export function customerUrlIn(root: string, environment: string, customer: string): string {
  const file = path.join(root, `Pulumi.${environment}.yaml`);
  const env = (parse(fs.readFileSync(file, "utf8")) as { config: Record<string, any> }).config["hardened-fleet:environment"];
  const port = env.edge.httpsPort ?? 443;
  return `https://${customer}.${env.edge.domain}${port === 443 ? "" : `:${port}`}`;
}
