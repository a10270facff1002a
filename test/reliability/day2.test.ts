/**
 * Day-2 faults, with the fleet CLI run as separate processes against the real Docker and Pulumi
 * engines, in a throwaway copy of the project. Every case states what must hold afterwards: nothing
 * lost (files written through the app before are still there, owned by 1000), nothing left
 * half-made (no stale lock, no interrupted operation, one container per customer), and a clear
 * error naming what to do when the command cannot go on.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { readCustomerConfig } from "../../src/fleet/stackFiles";
import { pulumiLockFiles } from "../../src/fleet/recovery";
import { customerNames } from "../../src/hardening/names";
import { fleet, killLeftovers, orphanedPlugins, show, type FleetRun } from "../support/cli";
import { engine, removeQuietly } from "../support/engine";
import { request } from "../support/http";
import { copyProject, dropEncryptionSalt, editEnvironment } from "../support/projectCopy";

const PASSPHRASE = "reliability-test-passphrase";
const STAGING = ["rel-a", "rel-f", "rel-k"];
const CONCURRENT = ["ports", "rollout", "build", "rel-c4", "rel-c5", "rel-c6", "rel-c7", "rel-c8"];
const PROD = ["rel-p"];
const ALL: [string, string][] = [...STAGING, ...CONCURRENT].map((id): [string, string] => ["staging", id])
  .concat(PROD.map((id): [string, string] => ["prod", id]));

type FileEntry = { path: string; uid: number; gid: number };

describe("day-2 reliability: the fleet CLI under faults, on the real engines", () => {
  const ctx = copyProject();
  const root = ctx.root;
  const env = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE, FLEET_BACKUP_DIR: path.join(root, "backups") };
  const run = (args: string[], opts: Parameters<typeof fleet>[2] = {}) => fleet(root, args, { ...opts, env: { ...env, ...opts.env } });
  const ok = async (args: string[]): Promise<FleetRun> => {
    const r = await run(args);
    assert.equal(r.code, 0, `fleet ${args.join(" ")}: ${show(r)}`);
    return r;
  };
  const url = (environment: string, id: string) => `http://127.0.0.1:${readCustomerConfig(root, `${environment}-${id}`)!.port}`;
  const proof = new Map<string, string[]>();

  /** Writes an upload and a backup through the app; remembers the paths it made. */
  async function writeThroughApp(environment: string, id: string, tag: string): Promise<void> {
    const base = url(environment, id);
    assert.equal((await request(`${base}/uploads?name=${tag}.txt`, "POST", `proof ${tag}`)).status, 201);
    const backup = await request(`${base}/backups`, "POST");
    assert.equal(backup.status, 201);
    const list = proof.get(`${environment}-${id}`) ?? [];
    list.push(`/data/uploads/${tag}.txt`, (backup.body as { backup: FileEntry }).backup.path);
    proof.set(`${environment}-${id}`, list);
  }

  /** Every file written through the app before is still there, and everything is owned by 1000:1000. */
  async function nothingLost(environment: string, id: string): Promise<void> {
    const r = await request(`${url(environment, id)}/files`);
    assert.equal(r.status, 200, `${environment}-${id} answers`);
    const files = (r.body as { files: FileEntry[] }).files;
    const paths = new Set(files.map((f) => f.path));
    for (const p of proof.get(`${environment}-${id}`) ?? []) assert.ok(paths.has(p), `${environment}-${id}: ${p} was lost`);
    assert.deepEqual(files.filter((f) => f.uid !== 1000 || f.gid !== 1000), [], `${environment}-${id}: files not owned by 1000`);
  }

  async function health(environment: string, id: string): Promise<string> {
    const info = await engine.getContainer(customerNames(environment, id).container).inspect().catch(() => undefined);
    if (!info) return "missing";
    return info.State.Running ? info.State.Health?.Status ?? "running" : `${info.State.Status} (${info.State.ExitCode})`;
  }

  async function waitHealthy(environment: string, id: string, ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    let status = await health(environment, id);
    while (status !== "healthy" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      status = await health(environment, id);
    }
    return status;
  }

  /** Nothing half-made: no Pulumi lock, no interrupted operation, exactly one container of the customer. */
  async function nothingHalfMade(environment: string, id: string): Promise<void> {
    const stack = `${environment}-${id}`;
    assert.deepEqual(pulumiLockFiles(path.join(root, ".fleet", "state"), stack), [], `${stack}: a Pulumi lock is left`);
    const checkpoint = path.join(root, ".fleet", "state", ".pulumi", "stacks", "hardened-fleet", `${stack}.json`);
    const state = JSON.parse(fs.readFileSync(checkpoint, "utf8")) as { checkpoint: { latest: { pending_operations?: unknown[] } } };
    assert.deepEqual(state.checkpoint.latest.pending_operations ?? [], [], `${stack}: interrupted operations are left`);
    const containers = await engine.listContainers({ all: true, filters: { label: [`io.hardened-fleet.environment=${environment}`, `io.hardened-fleet.customer=${id}`] } });
    assert.equal(containers.length, 1, `${stack}: ${containers.map((c) => c.Names[0]).join(", ")}`);
  }

  /** Pulumi's progress names no replacement, deletion or creation of the customer's network or data volume. */
  const keptNetworkAndVolume = (r: FleetRun, id: string) =>
    assert.doesNotMatch(r.stderr, new RegExp(`${id}-(data|net)\\b.*(replac|delet|creat)`), show(r));
  const networkId = async (environment: string, id: string) => (await engine.getNetwork(customerNames(environment, id).network).inspect()).Id as string;

  async function cleanDocker(): Promise<void> {
    for (const [environment, id] of ALL) {
      const n = customerNames(environment, id);
      await removeQuietly({ containers: [n.container], networks: [n.network], volumes: [n.dataVolume] });
    }
  }

  let pluginsBefore: number[] = [];

  before(async () => {
    pluginsBefore = orphanedPlugins();
    dropEncryptionSalt(root, "staging");
    dropEncryptionSalt(root, "prod");
    editEnvironment(root, "staging", (e) => {
      e.publish.portRange = { from: 18500, to: 18549 };
      e.deploy.healthTimeoutSeconds = 30;
    });
    editEnvironment(root, "prod", (e) => {
      e.publish.portRange = { from: 18550, to: 18599 };
      e.deploy.healthTimeoutSeconds = 30;
      e.app.healthcheck.intervalSeconds = 2;
      e.app.healthcheck.startPeriodSeconds = 2;
    });
    await cleanDocker();
  });

  after(async () => {
    // the kill -9 cases orphan pulumi's plugins (they run in process groups of their own): nothing outlives the suite
    killLeftovers(pluginsBefore);
    await cleanDocker();
    fs.rmSync(root, { recursive: true, force: true });
    assert.deepEqual(orphanedPlugins().filter((p) => !pluginsBefore.includes(p)), [], "plugin processes outlived the suite");
  });

  it("bad names are refused before anything exists; a '../' environment deletes nothing outside the project", async () => {
    const victim = path.join(os.tmpdir(), "victim-acme.yaml");
    fs.writeFileSync(victim, "precious\n");
    const relative = path.relative(root, os.tmpdir());
    const env = `${relative}/victim`; // Pulumi.<env>-acme.yaml would be the victim file
    try {
      for (const args of [
        ["deprovision", "acme", "--env", env],
        ["provision", "acme", "--env", env],
        ["migrate", "acme", "--env", "../x"],
        ["provision", "Acme", "--env", "staging"],
        ["provision", "acme", "--env", "prod-eu"],
        ["up", "../staging"],
        ["destroy", "staging-../x"],
        ["audit", "--stack", "../x"],
        ["list", "--env", "../x"],
      ]) {
        const r = await run(args);
        assert.equal(r.code, 1, `${args.join(" ")}: ${show(r)}`);
        assert.match(r.stderr, /fleet: invalid .*nothing was created\n\s+- (customer id|--env|stack|--stack): must /, `${args.join(" ")}: ${show(r)}`);
      }
      assert.equal(fs.readFileSync(victim, "utf8"), "precious\n");
      assert.deepEqual(fs.readdirSync(root).filter((f) => /^Pulumi\..*-/.test(f)), []);
      assert.ok(!fs.existsSync(path.join(root, ".fleet", "state", ".pulumi", "stacks")), "no stack was created");
    } finally {
      fs.rmSync(victim, { force: true });
    }
  });

  it("staging up; a rollout is refused while staging has no customer to gate on, and prod's config is untouched", async () => {
    await ok(["up", "staging"]);
    const prodFile = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
    const r = await run(["rollout"]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /staging has no deployed customer, so nothing could pass the gate before prod: provision one first/);
    assert.equal(fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8"), prodFile);
  });

  it("provision, then migrate twice: the second run changes nothing and the customer keeps running", async () => {
    await ok(["provision", "rel-a", "--env", "staging", "--plan", "starter"]);
    await writeThroughApp("staging", "rel-a", "before-migrate");
    const first = await ok(["migrate", "rel-a", "--env", "staging"]);
    assert.equal(await health("staging", "rel-a"), "healthy", show(first));
    const second = await ok(["migrate", "rel-a", "--env", "staging"]);
    assert.match(second.stdout, /staging-rel-a: same \d+ in/, show(second));
    assert.equal(await health("staging", "rel-a"), "healthy");
    await nothingLost("staging", "rel-a");
  });

  it("a plan change in staging updates the container; the network and the data volume stay the same objects", async () => {
    const netId = await networkId("staging", "rel-a");
    const r = await ok(["provision", "rel-a", "--env", "staging", "--plan", "standard"]);
    assert.doesNotMatch(r.stdout, /delete|create [1-9]/, show(r));
    keptNetworkAndVolume(r, "rel-a");
    assert.equal(await networkId("staging", "rel-a"), netId);
    const info = await engine.getContainer(customerNames("staging", "rel-a").container).inspect();
    assert.equal(info.HostConfig.Memory, 256 * 1024 * 1024);
    assert.equal(info.HostConfig.PidsLimit, 128);
    assert.equal(await health("staging", "rel-a"), "healthy");
    await nothingLost("staging", "rel-a");
  });

  it("a foreign process listening on the next free port: provision takes another port and succeeds", async () => {
    const taken = 18501; // rel-a has 18500
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: taken }, resolve));
    try {
      await ok(["provision", "rel-f", "--env", "staging"]);
      assert.equal(readCustomerConfig(root, "staging-rel-f")!.port, 18502);
      assert.equal(await health("staging", "rel-f"), "healthy");
      await writeThroughApp("staging", "rel-f", "first");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  for (const [point, pattern, killGroup] of [
    ["of fleet as pulumi up starts", /pulumi up staging-rel-k/, false],
    ["of fleet, pulumi and its plugins (a crash) while the container is being created", /Container rel-k-container creating/, true],
  ] as const) {
    it(`kill -9 ${point}: the same command again finishes, with no stale lock and one container`, async () => {
      // the crash comes once the container exists on the engine but before Pulumi has recorded it
      const containerExists = async () => (await engine.getContainer(customerNames("staging", "rel-k").container).inspect().catch(() => undefined)) !== undefined;
      const killed = await run(["provision", "rel-k", "--env", "staging"], { killWhen: pattern, killGroup, killOnceTrue: killGroup ? containerExists : undefined });
      assert.ok(killed.killed, `the kill point was never reached: ${show(killed)}`);
      const again = await run(["provision", "rel-k", "--env", "staging"], { timeoutMs: 420_000 });
      assert.equal(again.code, 0, show(again));
      if (killGroup) {
        // the crash left Pulumi's lock and an interrupted create: fleet cleared both and said so
        assert.match(again.stderr, /cleared a Pulumi lock left by pid \d+ .*no longer running/, show(again));
        assert.match(again.stderr, /operation\(s\) were interrupted \(creating .*\); reconciling with the engine/, show(again));
      }
      assert.equal(await health("staging", "rel-k"), "healthy");
      await nothingHalfMade("staging", "rel-k");
      await writeThroughApp("staging", "rel-k", `after-kill-${point.length}`);
      // the next kill point starts from a deployed customer: take it away again, keeping its data
      if (!killGroup) await ok(["deprovision", "rel-k", "--env", "staging"]);
    });
  }

  it("kill -9 in the middle of a plan change: the retry finishes it and every file is still there", async () => {
    const killed = await run(["provision", "rel-a", "--env", "staging", "--plan", "starter"], { killWhen: /Container rel-a-container (creating|deleting|replacing|updating)/ });
    assert.ok(killed.killed, `the kill point was never reached: ${show(killed)}`);
    const again = await run(["provision", "rel-a", "--env", "staging", "--plan", "starter"], { timeoutMs: 420_000 });
    assert.equal(again.code, 0, show(again));
    assert.equal(await health("staging", "rel-a"), "healthy");
    assert.equal((await engine.getContainer(customerNames("staging", "rel-a").container).inspect()).HostConfig.Memory, 128 * 1024 * 1024);
    await nothingHalfMade("staging", "rel-a");
    await nothingLost("staging", "rel-a");
  });

  it("an update to an image that never gets healthy goes back to the image it ran, and the command fails saying so", async () => {
    const before = (await engine.getContainer(customerNames("staging", "rel-a").container).inspect()).Image;
    const hc = path.join(root, "examples", "customer-app", "healthcheck.py");
    const good = fs.readFileSync(hc, "utf8");
    fs.writeFileSync(hc, "import sys\nsys.exit(1)\n");
    try {
      await ok(["up", "staging"]);
      // the image customers may roll back to keeps its tag: pruning cannot remove it
      assert.ok(((await engine.getImage(before).inspect()).RepoTags ?? []).length > 0, "the previous image lost its tag");
      await engine.pruneImages();
      const r = await run(["up", "staging-rel-a"]);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, /did not become healthy/);
      assert.match(r.stderr, /rolled back: staging-rel-a runs sha256:[0-9a-f]{12} on plan starter again, pinned to that image/);
      assert.equal(await health("staging", "rel-a"), "healthy");
      assert.equal((await engine.getContainer(customerNames("staging", "rel-a").container).inspect()).Image, before);
      await nothingLost("staging", "rel-a");
      // the other staging customers were not touched
      assert.equal(await health("staging", "rel-f"), "healthy");
    } finally {
      fs.writeFileSync(hc, good);
    }
    await ok(["up", "staging"]);
  });

  it("prod: a customer on protected volumes changes plan in place of its container; volume and network stay", async () => {
    await ok(["up", "prod"]);
    await ok(["provision", "rel-p", "--env", "prod", "--plan", "starter"]);
    await writeThroughApp("prod", "rel-p", "prod-before");
    const netId = await networkId("prod", "rel-p");
    const r = await ok(["provision", "rel-p", "--env", "prod", "--plan", "standard"]);
    assert.doesNotMatch(r.stdout, /delete|create [1-9]/, show(r));
    keptNetworkAndVolume(r, "rel-p");
    assert.equal(await networkId("prod", "rel-p"), netId);
    assert.equal((await engine.getContainer(customerNames("prod", "rel-p").container).inspect()).HostConfig.Memory, 512 * 1024 * 1024);
    await nothingLost("prod", "rel-p");
  });

  it("kill -9 of a rollout while staging customers move, and again while prod takes the new image, then the rollout again: everyone on the new image, nothing lost", async () => {
    fs.writeFileSync(path.join(root, "examples", "customer-app", "VERSION"), "1.0.1-rel\n");
    const prodBefore = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
    const inStaging = await run(["rollout"], { killWhen: /Container rel-f-container (creating|deleting|replacing)/ });
    assert.ok(inStaging.killed, `the kill point was never reached: ${show(inStaging)}`);
    // killed before the gate: prod's config was not touched
    assert.equal(fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8"), prodBefore);
    const killed = await run(["rollout"], { killWhen: /pulumi up prod\n/ });
    assert.ok(killed.killed, `the kill point was never reached: ${show(killed)}`);
    const again = await run(["rollout"], { timeoutMs: 900_000 });
    assert.equal(again.code, 0, show(again));
    assert.match(again.stdout, /rollout of sha256:[0-9a-f]{64} done/);
    const digest = /rollout of (sha256:[0-9a-f]{64}) done/.exec(again.stdout)![1]!;
    assert.match(fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8"), new RegExp(`digest: ${digest}`));
    for (const [environment, id] of [["staging", "rel-a"], ["staging", "rel-f"], ["staging", "rel-k"], ["prod", "rel-p"]] as const) {
      const info = await engine.getContainer(customerNames(environment, id).container).inspect();
      assert.equal(info.Image, digest, `${environment}-${id}`);
      assert.equal(info.State.Health?.Status, "healthy", `${environment}-${id}`);
      await nothingHalfMade(environment, id);
      await nothingLost(environment, id);
    }
  });

  it("8 provisions at once from 8 processes (customers named ports, rollout and build among them) all succeed on distinct ports", async () => {
    const runs = await Promise.all(CONCURRENT.map((id) => run(["provision", id, "--env", "staging"], { timeoutMs: 900_000 })));
    for (const [i, r] of runs.entries()) assert.equal(r.code, 0, `${CONCURRENT[i]}: ${show(r)}`);
    const ports = CONCURRENT.map((id) => readCustomerConfig(root, `staging-${id}`)!.port);
    assert.equal(new Set([...ports, ...STAGING.map((id) => readCustomerConfig(root, `staging-${id}`)!.port)]).size, ports.length + STAGING.length);
    for (const id of CONCURRENT) {
      assert.equal(await health("staging", id), "healthy", id);
      await writeThroughApp("staging", id, "concurrent");
    }
  });

  it("the Docker engine stopped and started again (a reboot): every customer is back within a minute, audit clean, nothing lost", async () => {
    const { execFileSync, spawnSync } = await import("node:child_process");
    spawnSync("pkill", ["-TERM", "-x", "dockerd"]);
    for (let i = 0; i < 120 && spawnSync("pgrep", ["-x", "dockerd"]).status === 0; i++) await new Promise((r) => setTimeout(r, 500));
    assert.notEqual(spawnSync("pgrep", ["-x", "dockerd"]).status, 0, "dockerd did not stop");
    execFileSync("bash", [path.join(root, "scripts", "setup-engine.sh")], { stdio: "inherit", env: { ...process.env, HF_SKIP_APT: "1" } });
    const customers = ALL;
    const deadline = Date.now() + 60_000;
    for (const [environment, id] of customers) {
      const status = await waitHealthy(environment, id, Math.max(1000, deadline - Date.now()));
      assert.equal(status, "healthy", `${environment}-${id} was not back within a minute of the engine`);
    }
    for (const [environment, id] of customers) await nothingLost(environment, id);
    const audit = await run(["audit"]);
    assert.equal(audit.code, 0, show(audit));
    assert.match(audit.stdout, /rel-a.*PASS/);
  });
});
