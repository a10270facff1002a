/**
 * Day-2 faults, with the fleet CLI run as separate processes against the real Docker and Pulumi
 * engines, in a throwaway copy of the project. Every case states what must hold afterwards: nothing
 * lost (files written through the app before are still there, owned by 1000), nothing left
 * half-made (no stale lock, no interrupted operation, one container per customer), and a clear
 * error naming what to do when the command cannot go on.
 *
 * Customers answer only through their environment's edge proxy (https://<id>.<env>.localhost:<port>),
 * and their containers are named after the slot of their spec, so they are found by their labels.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type Dockerode from "dockerode";
import { pulumiLockFiles } from "../../src/pulumi/recovery";
import { customerNames, edgeNames } from "../../src/hardening/names";
import { fleet, killLeftovers, orphanedPlugins, show, type FleetRun } from "../support/cli";
import { customerContainer, customerContainers, engine, removeCustomers } from "../support/engine";
import { request } from "../support/http";
import { copyProject, customerUrlIn, dropEncryptionSalt, editEnvironment, useEdge } from "../support/projectCopy";

const PASSPHRASE = "reliability-test-passphrase";
const EDGE = "edge-rel";
const STAGING = ["rel-a", "rel-f", "rel-k"];
const CONCURRENT = ["ports", "rollout", "build", "rel-c4", "rel-c5", "rel-c6", "rel-c7", "rel-c8"];
const PROD = ["rel-p"];
const ALL: [string, string][] = [...STAGING, ...CONCURRENT].map((id): [string, string] => ["staging", id])
  .concat(PROD.map((id): [string, string] => ["prod", id]));
/** a port no edge of this suite uses, for the foreign process */
const FOREIGN_PORT = 18504;

type FileEntry = { path: string; uid: number; gid: number };

/** The change summary fleet prints for a stack (`<stack>: create 2, delete 2, same 5, update 1 in 12.3s`). */
function changesOf(r: FleetRun, stack: string): Record<string, number> {
  const m = new RegExp(`^${stack}: (.*) in [\\d.]+s$`, "m").exec(r.stdout);
  assert.ok(m, `no change summary of ${stack}: ${show(r)}`);
  const out: Record<string, number> = {};
  for (const part of m[1]!.split(", ")) {
    const [op, n] = part.split(" ");
    if (op && n) out[op] = Number(n);
  }
  return out;
}

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
  const url = (environment: string, id: string) => customerUrlIn(root, environment, id);
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
    assert.equal(r.status, 200, `${environment}-${id} answers: ${JSON.stringify(r.body).slice(0, 300)}`);
    const files = (r.body as { files: FileEntry[] }).files;
    const paths = new Set(files.map((f) => f.path));
    for (const p of proof.get(`${environment}-${id}`) ?? []) assert.ok(paths.has(p), `${environment}-${id}: ${p} was lost`);
    assert.deepEqual(files.filter((f) => f.uid !== 1000 || f.gid !== 1000), [], `${environment}-${id}: files not owned by 1000`);
  }

  const statusOf = (info: Awaited<ReturnType<typeof customerContainer>>): string => {
    if (!info) return "missing";
    return info.State.Running ? info.State.Health?.Status ?? "running" : `${info.State.Status} (${info.State.ExitCode})`;
  };
  const health = async (environment: string, id: string): Promise<string> => statusOf(await customerContainer(environment, id));
  const edgeContainer = (environment: string) => edgeNames(environment, EDGE).container;
  const edgeHealth = async (environment: string): Promise<string> =>
    statusOf(await engine.getContainer(edgeContainer(environment)).inspect().catch(() => undefined));

  async function waitFor(status: () => Promise<string>, ms: number, wanted = "healthy"): Promise<string> {
    const deadline = Date.now() + ms;
    let now = await status();
    while (now !== wanted && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      now = await status();
    }
    return now;
  }

  /** The customer's only container (a finished deployment leaves exactly one), inspected. */
  async function onlyContainer(environment: string, id: string) {
    const names = await customerContainers(environment, id);
    assert.equal(names.length, 1, `${environment}-${id}: ${names.join(", ")}`);
    return engine.getContainer(names[0]!).inspect();
  }

  /** Nothing half-made: no Pulumi lock, no interrupted operation, exactly one container of the customer. */
  async function nothingHalfMade(environment: string, id: string): Promise<void> {
    const stack = `${environment}-${id}`;
    assert.deepEqual(pulumiLockFiles(path.join(root, ".fleet", "state"), stack), [], `${stack}: a Pulumi lock is left`);
    const checkpoint = path.join(root, ".fleet", "state", ".pulumi", "stacks", "hardened-fleet", `${stack}.json`);
    const state = JSON.parse(fs.readFileSync(checkpoint, "utf8")) as { checkpoint: { latest: { pending_operations?: unknown[] } } };
    assert.deepEqual(state.checkpoint.latest.pending_operations ?? [], [], `${stack}: interrupted operations are left`);
    const containers = await customerContainers(environment, id);
    assert.equal(containers.length, 1, `${stack}: ${containers.join(", ")}`);
  }

  /** Pulumi's progress names no replacement, deletion or creation of the customer's network or data volume. */
  const keptNetworkAndVolume = (r: FleetRun, id: string) =>
    assert.doesNotMatch(r.stderr, new RegExp(`${id}-(data|network)\\b.*(replac|delet|creat)`), show(r));
  const networkId = async (environment: string, id: string) => (await engine.getNetwork(customerNames(environment, id).network).inspect()).Id as string;

  /**
   * A start-first plan change: a new container and gate beside the old ones, the route switched, the
   * old container and gate deleted; nothing replaced, the network and the volume the same objects.
   */
  async function planChanged(r: FleetRun, environment: string, id: string, old: string, netId: string): Promise<Dockerode.ContainerInspectInfo> {
    const changes = changesOf(r, `${environment}-${id}`);
    assert.equal(changes.create, 2, `container and gate created: ${show(r)}`);
    assert.equal(changes.delete, 2, `old container and gate deleted: ${show(r)}`);
    assert.equal(changes.update, 1, `the route switched: ${show(r)}`);
    assert.equal(changes.replace ?? 0, 0, show(r));
    keptNetworkAndVolume(r, id);
    assert.equal(await networkId(environment, id), netId);
    const info = await onlyContainer(environment, id);
    assert.notEqual(info.Name.replace(/^\//, ""), old, "the new spec runs in a new container");
    assert.match(info.Name, new RegExp(`^/${customerNames(environment, id).container}-[0-9a-f]{8}$`));
    return info;
  }

  const cleanDocker = () => removeCustomers(ALL, [["staging", EDGE], ["prod", EDGE]]);

  let pluginsBefore: number[] = [];

  before(async () => {
    pluginsBefore = orphanedPlugins();
    dropEncryptionSalt(root, "staging");
    dropEncryptionSalt(root, "prod");
    useEdge(root, "staging", EDGE, 18500, 18501);
    useEdge(root, "prod", EDGE, 18502, 18503);
    editEnvironment(root, "staging", (e) => {
      e.deploy.healthTimeoutSeconds = 30;
      // 8 deployments at once on 2 cores can slow the healthcheck's Python start past the demo's 3 s
      e.app.healthcheck.timeoutSeconds = 10;
    });
    editEnvironment(root, "prod", (e) => {
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
    assert.equal(await edgeHealth("staging"), "healthy", "the staging edge proxy");
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
    await nothingHalfMade("staging", "rel-a");
    await nothingLost("staging", "rel-a");
  });

  it("a plan change in staging starts a new container beside the old one; the network and the data volume stay the same objects", async () => {
    const netId = await networkId("staging", "rel-a");
    const old = (await onlyContainer("staging", "rel-a")).Name.replace(/^\//, "");
    const r = await ok(["provision", "rel-a", "--env", "staging", "--plan", "standard"]);
    const info = await planChanged(r, "staging", "rel-a", old, netId);
    assert.equal(info.HostConfig.Memory, 256 * 1024 * 1024);
    assert.equal(info.HostConfig.PidsLimit, 128);
    assert.equal(await health("staging", "rel-a"), "healthy");
    await nothingLost("staging", "rel-a");
  });

  it("a foreign process on the port edge.httpPort names: 'fleet up staging' fails naming the setting, and the stack and the proxy are untouched", async () => {
    const stackFile = path.join(root, "Pulumi.staging.yaml");
    const checkpoint = path.join(root, ".fleet", "state", ".pulumi", "stacks", "hardened-fleet", "staging.json");
    const config = fs.readFileSync(stackFile, "utf8");
    const stateBefore = fs.readFileSync(checkpoint, "utf8");
    const proxyBefore = await engine.getContainer(edgeContainer("staging")).inspect();
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: FOREIGN_PORT }, resolve));
    try {
      editEnvironment(root, "staging", (e) => { e.edge.httpPort = FOREIGN_PORT; });
      const r = await run(["up", "staging"]);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, /edge\.httpPort: 127\.0\.0\.1:18504 is in use by another program on this host: stop it, or set another edge\.httpPort in Pulumi\.staging\.yaml/, show(r));
      assert.doesNotMatch(r.stderr, /edge\.httpsPort/, show(r));
      assert.doesNotMatch(r.stderr, /pulumi up staging/, `nothing ran: ${show(r)}`);
    } finally {
      fs.writeFileSync(stackFile, config);
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(fs.readFileSync(checkpoint, "utf8"), stateBefore, "the staging stack changed");
    const proxyAfter = await engine.getContainer(edgeContainer("staging")).inspect();
    assert.equal(proxyAfter.Id, proxyBefore.Id, "the proxy was replaced");
    assert.equal(proxyAfter.State.StartedAt, proxyBefore.State.StartedAt, "the proxy was restarted");
    assert.equal(proxyAfter.State.Health?.Status, "healthy");
    await nothingLost("staging", "rel-a");

    // rel-f, which the later cases use
    await ok(["provision", "rel-f", "--env", "staging"]);
    assert.equal(await health("staging", "rel-f"), "healthy");
    await writeThroughApp("staging", "rel-f", "first");
  });

  for (const [point, pattern, killGroup] of [
    ["of fleet as pulumi up starts", /pulumi up staging-rel-k/, false],
    ["of fleet, pulumi and its plugins (a crash) while the container is being created", /Container rel-k-container-[0-9a-f]{8} creating/, true],
  ] as const) {
    it(`kill -9 ${point}: the same command again finishes, with no stale lock and one container`, async () => {
      // the crash comes once the container exists on the engine but before Pulumi has recorded it
      const containerExists = async () => (await customerContainers("staging", "rel-k")).length > 0;
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
    const killed = await run(["provision", "rel-a", "--env", "staging", "--plan", "starter"], { killWhen: /Container rel-a-container-[0-9a-f]{8} (creating|deleting)/ });
    assert.ok(killed.killed, `the kill point was never reached: ${show(killed)}`);
    const again = await run(["provision", "rel-a", "--env", "staging", "--plan", "starter"], { timeoutMs: 420_000 });
    assert.equal(again.code, 0, show(again));
    assert.equal(await health("staging", "rel-a"), "healthy");
    await nothingHalfMade("staging", "rel-a");
    assert.equal((await onlyContainer("staging", "rel-a")).HostConfig.Memory, 128 * 1024 * 1024);
    await nothingLost("staging", "rel-a");
  });

  it("an update to an image that never gets healthy goes back to the image it ran, and the command fails saying so", async () => {
    const running = await onlyContainer("staging", "rel-a");
    const before = running.Image;
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
      // the old container kept serving and is still the one; the failed one is gone
      await nothingHalfMade("staging", "rel-a");
      const after = await onlyContainer("staging", "rel-a");
      assert.equal(after.Id, running.Id, "the container that ran before runs again");
      assert.equal(after.Image, before);
      await nothingLost("staging", "rel-a");
      // the other staging customers were not touched
      assert.equal(await health("staging", "rel-f"), "healthy");
    } finally {
      fs.writeFileSync(hc, good);
    }
    await ok(["up", "staging"]);
  });

  it("prod: a customer on protected volumes changes plan start-first; volume and network stay", async () => {
    await ok(["up", "prod"]);
    assert.equal(await edgeHealth("prod"), "healthy", "the prod edge proxy");
    await ok(["provision", "rel-p", "--env", "prod", "--plan", "starter"]);
    await writeThroughApp("prod", "rel-p", "prod-before");
    const netId = await networkId("prod", "rel-p");
    const old = (await onlyContainer("prod", "rel-p")).Name.replace(/^\//, "");
    const r = await ok(["provision", "rel-p", "--env", "prod", "--plan", "standard"]);
    const info = await planChanged(r, "prod", "rel-p", old, netId);
    assert.equal(info.HostConfig.Memory, 512 * 1024 * 1024);
    await nothingLost("prod", "rel-p");
  });

  it("kill -9 of a rollout while staging customers move, and again while prod takes the new image, then the rollout again: everyone on the new image, nothing lost", async () => {
    fs.writeFileSync(path.join(root, "examples", "customer-app", "VERSION"), "1.0.1-rel\n");
    const prodBefore = fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8");
    const inStaging = await run(["rollout"], { killWhen: /Container rel-f-container-[0-9a-f]{8} (creating|deleting)/ });
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
      await nothingHalfMade(environment, id);
      const info = await onlyContainer(environment, id);
      assert.equal(info.Image, digest, `${environment}-${id}`);
      assert.equal(info.State.Health?.Status, "healthy", `${environment}-${id}`);
      await nothingLost(environment, id);
    }
  });

  it("8 provisions at once from 8 processes (customers named ports, rollout and build among them) all succeed, each at its own URL, publishing no port", async () => {
    const runs = await Promise.all(CONCURRENT.map((id) => run(["provision", id, "--env", "staging"], { timeoutMs: 900_000 })));
    for (const [i, r] of runs.entries()) assert.equal(r.code, 0, `${CONCURRENT[i]}: ${show(r)}`);
    for (const id of CONCURRENT) {
      assert.equal(await health("staging", id), "healthy", id);
      const home = await request(`${url("staging", id)}/`);
      assert.equal(home.status, 200, `${id} answers at ${url("staging", id)}`);
      await writeThroughApp("staging", id, "concurrent");
      await nothingLost("staging", id);
    }
    // the uploads went to each customer's own volume: nobody sees another's file under its own URL
    assert.equal(new Set(CONCURRENT.map((id) => url("staging", id))).size, CONCURRENT.length);
    for (const [environment, id] of ALL) {
      const info = await onlyContainer(environment, id);
      assert.deepEqual(Object.keys(info.HostConfig.PortBindings ?? {}), [], `${environment}-${id} publishes a port`);
    }
  });

  it("while a plan change runs, GET /healthz through the proxy every 50 ms never fails", async () => {
    const old = (await onlyContainer("staging", "rel-a")).Name.replace(/^\//, "");
    const change = run(["provision", "rel-a", "--env", "staging", "--plan", "standard"]);
    let done = false;
    void change.then(() => { done = true; });
    let requests = 0;
    const failures: string[] = [];
    while (!done) {
      requests++;
      try {
        const r = await request(`${url("staging", "rel-a")}/healthz`, "GET", undefined, { timeoutMs: 5_000 });
        if (r.status !== 200) failures.push(`${new Date().toISOString()} ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      } catch (err) {
        failures.push(`${new Date().toISOString()} ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await change;
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed during the plan change`);
    assert.ok(requests >= 20, `only ${requests} requests were made during the plan change`);
    const info = await onlyContainer("staging", "rel-a");
    assert.notEqual(info.Name.replace(/^\//, ""), old);
    assert.equal(info.HostConfig.Memory, 256 * 1024 * 1024);
  });

  it("the Docker engine stopped and started again (a reboot): the edge proxies and every customer are back within a minute, answering through the proxy, audit clean, nothing lost", async () => {
    const { execFileSync } = await import("node:child_process");
    // the host's engine only (its pid file): a swarm test cluster's engines may run beside this suite
    const pid = Number(fs.readFileSync("/var/run/docker.pid", "utf8").trim());
    assert.equal(fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim(), "dockerd", "/var/run/docker.pid is not a running dockerd");
    process.kill(pid, "SIGTERM");
    // gone, or a zombie not reaped yet (state Z)
    const alive = () => { try { return !/^\d+ \(dockerd\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8")); } catch { return false; } };
    for (let i = 0; i < 120 && alive(); i++) await new Promise((r) => setTimeout(r, 500));
    assert.ok(!alive(), "dockerd did not stop");
    execFileSync("bash", [path.join(root, "scripts", "setup-engine.sh")], { stdio: "inherit", env: { ...process.env, HF_SKIP_APT: "1" } });
    const deadline = Date.now() + 60_000;
    for (const [environment, id] of ALL) {
      const status = await waitFor(() => health(environment, id), Math.max(1000, deadline - Date.now()));
      assert.equal(status, "healthy", `${environment}-${id} was not back within a minute of the engine`);
    }
    for (const environment of ["staging", "prod"]) {
      const status = await waitFor(() => edgeHealth(environment), Math.max(1000, deadline - Date.now()));
      const policy = (await engine.getContainer(edgeContainer(environment)).inspect().catch(() => undefined))?.HostConfig.RestartPolicy;
      assert.equal(status, "healthy", `the ${environment} edge proxy was not back within a minute of the engine (restart policy ${JSON.stringify(policy)})`);
    }
    // every customer answers through its environment's proxy within that minute: a proxy reports healthy
    // before it has loaded every certificate from its volume, so the first handshakes may still fail
    for (const [environment, id] of ALL) {
      const answer = await waitFor(async () => {
        try {
          return String((await request(`${customerUrlIn(root, environment, id)}/healthz`)).status);
        } catch (err) {
          return (err as Error).message;
        }
      }, Math.max(1000, deadline - Date.now()), "200");
      assert.equal(answer, "200", `${environment}-${id} did not answer through the proxy within a minute of the engine`);
    }
    for (const [environment, id] of ALL) {
      await nothingHalfMade(environment, id);
      await nothingLost(environment, id);
    }
    // audit clean: every container of this suite (the engine may hold other suites' and the demo's too)
    const audit = await run(["audit", "--json"]);
    const mine = new Set([...ALL.map(([environment, id]) => customerNames(environment, id).container), edgeContainer("staging"), edgeContainer("prod")]);
    const audits = (JSON.parse(audit.stdout) as { containers: { container: string; ok: boolean; checks: { id: string; ok: boolean }[] }[] }).containers
      .filter((a) => mine.has(a.container) || mine.has(a.container.replace(/-[0-9a-f]{8}$/, "")));
    assert.equal(audits.length, mine.size, `audited: ${audits.map((a) => a.container).join(", ")}\n${show(audit)}`);
    for (const a of audits) assert.ok(a.ok, `${a.container}: ${a.checks.filter((c) => !c.ok).map((c) => c.id).join(", ")}`);
  });
});
