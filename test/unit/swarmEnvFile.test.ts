/**
 * `demo/swarm.js env-file` (the local test cluster's environment file, formerly `fleet swarm env-file`)
 * as a separate process (no cluster is started: a cluster description file is all it reads): it never
 * replaces an environment file it did not write (a prod file stays byte-identical), it may rewrite its
 * own, also one written with the mark of the old command, and (seen through strace) it writes a stack
 * file durably: temp file fsynced, renamed into place, directory fsynced.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { ENV_FILE_MARK, isClusterEnvironmentFile, LEGACY_ENV_FILE_MARK } from "../../demo/swarmCluster";
import { projectDir } from "../support/fixtures";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "hf-envfile-"));
const project = path.join(work, "project");
const clusterFile = path.join(work, "cluster.json");

function writeCluster(registry: string): void {
  fs.writeFileSync(clusterFile, JSON.stringify({
    name: "arcluster", manager: "unix:///run/hf-swarm/arcluster/node1.sock", registry,
    nodes: [1, 2].map((i) => ({ name: `node${i}`, host: `unix:///run/hf-swarm/arcluster/node${i}.sock`, address: `10.99.0.${i}`, namespace: `arcluster-node${i}` })),
    bases: Object.fromEntries(["python-base", "python-builder", "edge-base", "log-base"].map((b) => [b, `${registry}/hardened-fleet/${b}@sha256:${"a".repeat(64)}`])),
  }));
}

/** demo/swarm.ts under tsx, optionally under `strace -o trace`. */
function demoSwarm(args: string[], trace?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = [process.execPath, "--import", "tsx", path.join(projectDir, "demo", "swarm.ts"), ...args];
  const argv = trace ? ["strace", "-f", "-y", "-qq", "-o", trace, "-e", "trace=fsync,fdatasync,rename,renameat,renameat2", ...cli] : cli;
  const child = spawn(argv[0]!, argv.slice(1), { cwd: projectDir, env: { ...process.env, FLEET_PROJECT_DIR: project }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on("data", (c: Buffer) => { stderr += c.toString(); });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

const hasStrace = (() => {
  try {
    execFileSync("strace", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("demo/swarm.js env-file", { timeout: 120_000 }, () => {
  fs.mkdirSync(project);
  for (const f of ["Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"]) fs.copyFileSync(path.join(projectDir, f), path.join(project, f));
  writeCluster("10.99.0.1:5000");
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it("refuses to overwrite an environment file it did not write: Pulumi.prod.yaml stays byte-identical", async () => {
    const prod = path.join(project, "Pulumi.prod.yaml");
    const before = fs.readFileSync(prod);
    for (const extra of [[], ["--promote-from", "staging"]]) {
      const r = await demoSwarm(["env-file", "--cluster", clusterFile, "--env", "prod", ...extra]);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, /--env prod: .*Pulumi\.prod\.yaml exists and was not written by 'demo\/swarm\.js env-file'/);
      assert.match(r.stderr, /choose another --env name, or remove that file yourself/);
    }
    assert.deepEqual(fs.readFileSync(prod), before);
    assert.deepEqual(fs.readdirSync(project).filter((f) => f.startsWith("Pulumi.") || f.includes(".tmp-")).sort(), ["Pulumi.prod.yaml", "Pulumi.staging.yaml", "Pulumi.yaml"]);
  });

  it("writes its own file and may rewrite it, durably (write, fsync, rename, fsync of the directory)", async (t) => {
    const file = path.join(project, "Pulumi.arswarm.yaml");
    const first = await demoSwarm(["env-file", "--cluster", clusterFile, "--env", "arswarm"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(fs.readFileSync(file, "utf8"), /^# Environment stack 'arswarm': .*Written by 'demo\/swarm\.js env-file'/);
    assert.match(fs.readFileSync(file, "utf8"), /10\.99\.0\.1:5000/);

    writeCluster("10.99.0.1:5001");
    const trace = path.join(work, "strace.out");
    const again = await demoSwarm(["env-file", "--cluster", clusterFile, "--env", "arswarm"], hasStrace ? trace : undefined);
    assert.equal(again.code, 0, again.stderr);
    assert.match(fs.readFileSync(file, "utf8"), /10\.99\.0\.1:5001/);
    if (!hasStrace) return t.skip("strace is not installed: the order of fsync and rename is checked by test/unit/durableFile.test.ts only");
    // lines such as `123 fsync(21</tmp/.../.Pulumi.arswarm.yaml.tmp-123>) = 0`
    const lines = fs.readFileSync(trace, "utf8").split("\n").filter((l) => l.includes("Pulumi.arswarm.yaml") || new RegExp(`fsync\\(\\d+<${project}>\\)`).test(l));
    const tmp = lines.findIndex((l) => /fsync\(\d+<[^>]*\/\.Pulumi\.arswarm\.yaml\.tmp-\d+>\) = 0/.test(l));
    const rename = lines.findIndex((l) => /rename(at2?)?\(.*\.Pulumi\.arswarm\.yaml\.tmp-\d+.*Pulumi\.arswarm\.yaml.*\) = 0/.test(l));
    const dir = lines.findIndex((l, i) => i > rename && new RegExp(`fsync\\(\\d+<${project}>\\) = 0`).test(l));
    assert.ok(tmp >= 0 && rename > tmp && dir > rename, `expected fsync(temp) < rename < fsync(dir) in:\n${lines.join("\n")}`);
  });

  it("rewrites a file written by the old command (its first line has the mark of 'fleet swarm env-file')", async () => {
    const file = path.join(project, "Pulumi.aroldmark.yaml");
    fs.writeFileSync(file, `# Environment stack 'aroldmark': a staging-tier swarm environment on the cluster 'arcluster' (scripts/swarm-cluster.sh). ${LEGACY_ENV_FILE_MARK}; not committed.\nconfig: {}\n`);
    const r = await demoSwarm(["env-file", "--cluster", clusterFile, "--env", "aroldmark"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), file);
    assert.match(fs.readFileSync(file, "utf8"), /^# Environment stack 'aroldmark': .*Written by 'demo\/swarm\.js env-file'/);
    assert.match(fs.readFileSync(file, "utf8"), /hardened-fleet:environment:/);
  });
});

describe("isClusterEnvironmentFile", () => {
  const first = (mark: string) => `# Environment stack 'x': a staging-tier swarm environment on the cluster 'c' (scripts/swarm-cluster.sh). ${mark}; not committed.\nconfig: {}\n`;
  it("knows the files of demo/swarm.js env-file and those of the old fleet swarm env-file", () => {
    assert.equal(isClusterEnvironmentFile(first(ENV_FILE_MARK)), true);
    assert.equal(isClusterEnvironmentFile(first(LEGACY_ENV_FILE_MARK)), true);
  });
  it("refuses any other file: no mark, a mark not on the first line, or a first line that is not its own", () => {
    assert.equal(isClusterEnvironmentFile(first("Written by hand")), false);
    assert.equal(isClusterEnvironmentFile(`config: {}\n# Environment stack 'x': ${ENV_FILE_MARK}\n`), false);
    assert.equal(isClusterEnvironmentFile(`# notes: ${LEGACY_ENV_FILE_MARK}\nconfig: {}\n`), false);
    assert.equal(isClusterEnvironmentFile(""), false);
  });
});
