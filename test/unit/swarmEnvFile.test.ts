/**
 * `fleet swarm env-file` as a separate process (no cluster is started: a cluster description file is
 * all it reads): it never replaces an environment file it did not write (a prod file stays
 * byte-identical), it may rewrite its own, and (seen through strace) it writes a stack file durably:
 * temp file fsynced, renamed into place, directory fsynced.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { projectDir } from "../support/fixtures";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "hf-envfile-"));
const project = path.join(work, "project");
const clusterFile = path.join(work, "cluster.json");

function writeCluster(registry: string): void {
  fs.writeFileSync(clusterFile, JSON.stringify({
    name: "arcluster", manager: "unix:///run/hf-swarm/arcluster/node1.sock", registry,
    nodes: [1, 2].map((i) => ({ name: `node${i}`, host: `unix:///run/hf-swarm/arcluster/node${i}.sock`, address: `10.99.0.${i}`, namespace: `arcluster-node${i}` })),
    bases: Object.fromEntries(["python-base", "python-builder", "edge-base"].map((b) => [b, `${registry}/hardened-fleet/${b}@sha256:${"a".repeat(64)}`])),
  }));
}

/** The CLI under tsx, as `npm run fleet` runs it, optionally under `strace -o trace`. */
function fleet(args: string[], trace?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = [process.execPath, "--import", "tsx", path.join(projectDir, "src", "cli", "main.ts"), ...args];
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

describe("fleet swarm env-file", { timeout: 120_000 }, () => {
  fs.mkdirSync(project);
  for (const f of ["Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"]) fs.copyFileSync(path.join(projectDir, f), path.join(project, f));
  writeCluster("10.99.0.1:5000");
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it("refuses to overwrite an environment file it did not write: Pulumi.prod.yaml stays byte-identical", async () => {
    const prod = path.join(project, "Pulumi.prod.yaml");
    const before = fs.readFileSync(prod);
    for (const extra of [[], ["--promote-from", "staging"]]) {
      const r = await fleet(["swarm", "env-file", "--cluster", clusterFile, "--env", "prod", ...extra]);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, /--env prod: .*Pulumi\.prod\.yaml exists and was not written by 'fleet swarm env-file'/);
      assert.match(r.stderr, /choose another --env name, or remove that file yourself/);
    }
    assert.deepEqual(fs.readFileSync(prod), before);
    assert.deepEqual(fs.readdirSync(project).filter((f) => f.startsWith("Pulumi.") || f.includes(".tmp-")).sort(), ["Pulumi.prod.yaml", "Pulumi.staging.yaml", "Pulumi.yaml"]);
  });

  it("writes its own file and may rewrite it, durably (write, fsync, rename, fsync of the directory)", async (t) => {
    const file = path.join(project, "Pulumi.arswarm.yaml");
    const first = await fleet(["swarm", "env-file", "--cluster", clusterFile, "--env", "arswarm"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(fs.readFileSync(file, "utf8"), /^# Environment stack 'arswarm': .*Written by 'fleet swarm env-file'/);
    assert.match(fs.readFileSync(file, "utf8"), /10\.99\.0\.1:5000/);

    writeCluster("10.99.0.1:5001");
    const trace = path.join(work, "strace.out");
    const again = await fleet(["swarm", "env-file", "--cluster", clusterFile, "--env", "arswarm"], hasStrace ? trace : undefined);
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
});
