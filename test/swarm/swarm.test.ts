/**
 * target: swarm on a real cluster: four Docker engines, each in a network namespace this test
 * makes (scripts/swarm-cluster.sh), Swarm across them, a registry on the manager; node 4 is a sandbox
 * node (its engine's default runtime gVisor's runsc, node label hardened-fleet.sandbox=gvisor). The
 * fleet CLI runs as separate processes against a project copy, and every request goes through the
 * environment's edge proxy, over HTTPS, from inside the manager's namespace.
 *
 *  - six customers provisioned in bursts spread two per ordinary node (none on the sandbox node), each healthy and answering;
 *  - `fleet audit` audits every node (the customers' tasks and the proxy);
 *  - an update whose new task fails its healthcheck is rolled back by Swarm: the old task never stopped;
 *  - a worker's engine stopped: the other nodes' customers keep answering; its own come back with it;
 *  - `fleet move` takes a customer to another node with every file it wrote;
 *  - overlays: `fleet audit` fails an unencrypted one unless waived; an existing customer moves to an encrypted one;
 *  - a customer deprovisioned and provisioned again goes back to the node with its data; --purge-data deletes every copy, on its node;
 *  - a `fleet move` killed after it scaled the service to 0: the next `fleet up` of the customer brings it back;
 *  - backups: a customer's snapshot is taken on the node that holds its volume, through a backup host
 *    on the cluster's network (test/support/backupHost.ts); that node lost (its engine stopped),
 *    `fleet restore --node` brings the customer back on another node with every file;
 *  - `fleet watch` (run inside the manager's namespace, where the proxy listens): a task on a worker
 *    frozen is down within two probe intervals, its neighbours quiet, and recovered once it resumes;
 *  - a customer of the plan `sandboxed` is refused while the sandbox node lacks its node label, naming
 *    the command that adds it, with nothing made; then it goes to the sandbox node and runs under runsc there: it answers
 *    through the proxy and keeps its files (1000:1000), `fleet audit` passes it (its runtime check too),
 *    `fleet list` shows runsc for it and runc for the others; `fleet move` to an ordinary node is
 *    refused before anything changes.
 *
 * The cluster is removed at the end (and the project copy with its state).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import Dockerode from "dockerode";
import { fleet, killLeftovers, orphanedPlugins, show, startFleet } from "../support/cli";
import { startReceiverIn } from "../support/alertReceiver";
import { readStack } from "../../src/pulumi/stackState";
import { copyProject, customerUrlIn, editEnvironment, useFixtureDatabase } from "../support/projectCopy";
import { readCluster, requestInNamespace, type Cluster } from "../../demo/swarmCluster";
import { findService, runningTask } from "../../src/swarm/deploy";
import { overlayNetworkName } from "../../src/swarm/serviceSpec";
import { dockerodeOptions } from "../../src/engine/connection";
import { BACKUP_IMAGE } from "../../src/backup/toolImage";
import { parseEnvironmentName } from "../../src/config/targets";
import { writeStackSecret } from "../../src/pulumi/stacks";
import { clusterAddress } from "../../demo/swarmCluster";
import { startBackupHost, type BackupHost } from "../support/backupHost";

const CLUSTER = "hfswt";
const ENV = "swarm";
const PASSPHRASE = "swarm-test-passphrase";
const CUSTOMERS = ["sw-a", "sw-b", "sw-c", "sw-d", "sw-e", "sw-f"];

function clusterScript(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("bash", [path.join(__dirname, "..", "..", "scripts", "swarm-cluster.sh"), ...args],
      { env: { ...process.env, HF_SWARM_CLUSTER: CLUSTER, HF_SWARM_SUBNET: "232" }, maxBuffer: 16 * 1024 * 1024, timeout: 900_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`swarm-cluster.sh ${args.join(" ")}: ${err.message}\n${stderr.slice(-3000)}`)) : resolve(stdout.trim())));
  });
}

describe("customers on a Docker Swarm cluster of four engines, one a gVisor sandbox node (real engines, CLI processes)", { timeout: 45 * 60_000 }, () => {
  const ctx = copyProject();
  const root = ctx.root;
  const appPy = path.join(root, "examples", "customer-app", "app.py");
  const goodApp = fs.readFileSync(appPy, "utf8");
  const env = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
  const pluginsBefore = orphanedPlugins();
  let cluster: Cluster;
  let caFile: string;
  const run = (args: string[]) => fleet(root, args, { env, timeoutMs: 900_000 });
  const ok = async (args: string[]) => {
    const r = await run(args);
    assert.equal(r.code, 0, `fleet ${args.join(" ")}: ${show(r)}`);
    return r;
  };
  /** the cluster's environment file, written by the demo layer's command (not an operator command) */
  const envFile = async (args: string[]) => {
    const r = await fleet(root, ["env-file", "--cluster", `/run/hf-swarm/${CLUSTER}/cluster.json`, ...args], { env, entry: "demo/swarm.ts", timeoutMs: 900_000 });
    assert.equal(r.code, 0, `demo/swarm.ts env-file ${args.join(" ")}: ${show(r)}`);
    // the tests' vulnerability database; a promoting environment waives its one advisory
    const name = args[args.indexOf("--env") + 1]!;
    useFixtureDatabase(root, name, { waive: args.includes("--promote-from") });
    return r;
  };
  const manager = () => new Dockerode(dockerodeOptions(cluster.manager));
  /** the nodes that are not sandbox nodes: where the customers of every plan but a sandboxed one go */
  const plainNodes = () => cluster.nodes.filter((n) => !n.sandbox);
  const serviceOf = (id: string) => `hf-${ENV}-${id}`;
  /** the node of the customer's running task, as the manager reports it (a returning worker reports its tasks a little later) */
  const nodeOf = async (id: string, waitSeconds = 60) => {
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const task = await runningTask(manager(), serviceOf(id));
      if (task || Date.now() > deadline) return task?.node;
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const get = (id: string, pathname: string, method = "GET", body?: string, environment = ENV, ca = caFile) =>
    requestInNamespace(cluster.nodes[0]!.namespace, `${customerUrlIn(root, environment, id)}${pathname}`, ca, method, body);
  /** the customers that exist (one is purged on the way) */
  const live = [...CUSTOMERS];
  /** the customer deprovisioned and provisioned again */
  let returned = "";
  /** files each customer wrote through the app, to be found again after every fault */
  const written = new Map<string, string[]>();
  async function write(id: string, tag: string): Promise<void> {
    const r = await get(id, `/uploads?name=${tag}.txt`, "POST", `proof ${tag}`);
    assert.equal(r.status, 201, `${id}: upload ${tag}: ${r.body}`);
    written.set(id, [...(written.get(id) ?? []), `/data/uploads/${tag}.txt`]);
  }
  async function assertFilesKept(id: string): Promise<void> {
    const r = await get(id, "/files");
    assert.equal(r.status, 200, `${id}: /files: ${r.body}`);
    const files = (JSON.parse(r.body) as { files: { path: string; uid: number; gid: number }[] }).files;
    for (const f of written.get(id) ?? []) {
      const found = files.find((x) => x.path === f);
      assert.ok(found, `${id}: ${f} is gone; it has ${files.map((x) => x.path).join(", ")}`);
      assert.deepEqual([found.uid, found.gid], [1000, 1000], `${id}: ${f} owner`);
    }
  }
  async function answersWithin(id: string, seconds: number): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    let last = "";
    while (Date.now() < deadline) {
      const r = await get(id, "/").catch((e: Error) => ({ status: 0, body: e.message }));
      if (r.status === 200) return;
      last = `${r.status} ${r.body.slice(0, 200)}`;
      await new Promise((res) => setTimeout(res, 1000));
    }
    assert.fail(`${id} did not answer within ${seconds}s: ${last}`);
  }

  /** The containers (12 hex) whose lines `fleet logs` shows for a customer, once `enough` says so (or after 20 s). */
  async function logSources(id: string, enough: (seen: Set<string>) => boolean): Promise<Set<string>> {
    let seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      seen = new Set((await ok(["logs", id, "--env", ENV])).stdout.split("\n").filter(Boolean).map((l) => l.split(" ")[1]!));
      if (enough(seen)) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    return seen;
  }

  before(async () => {
    cluster = readCluster(await clusterScript(["up"]));
    await envFile(["--env", ENV]);
    await ok(["up", ENV]);
  });

  after(async () => {
    killLeftovers(pluginsBefore);
    await clusterScript(["down"]).catch((err: Error) => console.error(err.message));
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("provisions six customers in bursts of three: two per ordinary node (none on the sandbox node), each healthy and answering over HTTPS through the proxy", async () => {
    for (const burst of [CUSTOMERS.slice(0, 3), CUSTOMERS.slice(3)]) {
      const runs = await Promise.all(burst.map((id) => run(["provision", id, "--env", ENV, "--plan", "starter"])));
      runs.forEach((r, i) => assert.equal(r.code, 0, `provision ${burst[i]}: ${show(r)}`));
    }
    const caRun = await ok(["edge", "ca", "--env", ENV]);
    caFile = path.join(root, ".fleet", "swarm-ca.pem");
    fs.writeFileSync(caFile, caRun.stdout);

    const perNode = new Map<string, string[]>();
    for (const id of CUSTOMERS) {
      const node = await nodeOf(id);
      assert.ok(node, `${id} has no running task`);
      perNode.set(node, [...(perNode.get(node) ?? []), id]);
      const r = await get(id, "/");
      assert.equal(r.status, 200, `${id}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { customer?: string }).customer ?? id, id);
      await write(id, `${id}-first`);
    }
    assert.deepEqual([...perNode.keys()].sort(), plainNodes().map((n) => n.name).sort(), JSON.stringify([...perNode]));
    for (const [node, ids] of perNode) assert.equal(ids.length, 2, `${node} runs ${ids.join(", ")}`);

    // the Swarm service has what the container had: limits, read-only root, the secret as a file
    const service = await findService(manager(), serviceOf("sw-a"));
    const spec = service!.Spec as any;
    assert.equal(spec.TaskTemplate.Resources.Limits.Pids, 64);
    assert.equal(spec.TaskTemplate.ContainerSpec.ReadOnly, true);
    assert.ok(!spec.TaskTemplate.ContainerSpec.Env.some((e: string) => e.startsWith("APP_SECRET_KEY=")));
    assert.match(spec.TaskTemplate.ContainerSpec.Image, new RegExp(`^${cluster.registry.replace(/\./g, "\\.")}/hardened-fleet/customer-app(:[^@]+)?@sha256:`));
  });

  it("fleet audit checks every node: each customer's task and the proxy pass every check", async () => {
    const r = await run(["audit", "--env", ENV, "--json"]);
    const audit = JSON.parse(r.stdout) as { ok: boolean; containers: { container: string; customer: string; ok: boolean; checks: { id: string; ok: boolean; detail: string }[] }[] };
    const failures = audit.containers.flatMap((c) => c.checks.filter((x) => !x.ok).map((x) => `${c.container} ${x.id}: ${x.detail}`));
    assert.deepEqual(failures, []);
    assert.equal(r.code, 0, show(r));
    // the customers' tasks, the proxy, and a log collector on each node
    assert.equal(audit.containers.length, CUSTOMERS.length + 1 + cluster.nodes.length, audit.containers.map((c) => c.container).join(", "));
    for (const node of cluster.nodes) {
      assert.ok(audit.containers.some((c) => c.container === `${node.name}/hf-${ENV}-edge-logs`), `no log collector audited on ${node.name}`);
    }
    for (const node of cluster.nodes) {
      assert.ok(audit.containers.some((c) => c.container.startsWith(`${node.name}/`)), `nothing audited on ${node.name}`);
    }
    const nnp = audit.containers.find((c) => c.customer === "sw-a")!.checks.find((x) => x.id === "no-new-privileges")!;
    assert.equal(nnp.detail, "set daemon-wide, NoNewPrivs 1");
    // this kernel has no IPsec (cluster.json "ipsec"), so the cluster's environment waives encrypted overlays, and the audit says so
    const overlay = audit.containers.find((c) => c.customer === "sw-a")!.checks.find((x) => x.id === "overlay-encrypted")!;
    assert.match(overlay.detail, cluster.ipsec?.ok ? /^encrypted: hf-swarm-sw-a-edge-ipsec$/ : /^NOT encrypted \(hf-swarm-sw-a-edge\), waived by swarm\.unencryptedOverlays: this machine's kernel cannot do IPsec ESP/);
  });

  it("overlays: without the waiver, the audit fails every unencrypted overlay; an existing customer moves to an encrypted one beside it, and back", async () => {
    if (cluster.ipsec?.ok) return; // overlays are encrypted from the start here: nothing to move
    let waiver: unknown;
    editEnvironment(root, ENV, (e) => { waiver = e.swarm.unencryptedOverlays; });
    assert.ok(waiver, "the cluster's environment waives encryption on this kernel");
    // the customer on the manager, where the proxy is: its traffic never crosses nodes, so it works without ESP
    const id = (await Promise.all(CUSTOMERS.map(async (c) => [c, await nodeOf(c)] as const))).find(([c, n]) => n === cluster.nodes[0]!.name && c !== "sw-a")?.[0]
      ?? (await nodeOf("sw-a") === cluster.nodes[0]!.name ? "sw-a" : assert.fail("no customer on the manager"));
    const network = `hf-${ENV}-${id}-edge`;
    await write(id, `${id}-before-ipsec`);
    editEnvironment(root, ENV, (e) => { delete e.swarm.unencryptedOverlays; });
    try {
      const failed = await run(["audit", "--env", ENV, "--json"]);
      assert.equal(failed.code, 1, show(failed));
      const rows = (JSON.parse(failed.stdout) as { containers: { customer: string; checks: { id: string; ok: boolean; detail: string }[] }[] }).containers;
      const mine = rows.find((c) => c.customer === id)!.checks.find((x) => x.id === "overlay-encrypted")!;
      assert.equal(mine.ok, false);
      assert.match(mine.detail, new RegExp(`^${network} carries customer traffic between nodes unencrypted`));

      // a redeploy moves it: the encrypted overlay beside the old one, the service and the proxy onto it, the old one removed
      await ok(["up", `${ENV}-${id}`]);
      const encrypted = await manager().getNetwork(overlayNetworkName(network, true)).inspect();
      assert.ok("encrypted" in (encrypted.Options ?? {}), JSON.stringify(encrypted.Options));
      await assert.rejects(manager().getNetwork(network).inspect(), /no such network|not found/i, "the old overlay is removed at the end");
      const spec = (await findService(manager(), serviceOf(id)))!.Spec as any;
      assert.deepEqual(spec.TaskTemplate.Networks.map((n: { Target: string }) => n.Target), [encrypted.Id]);
      await answersWithin(id, 60);
      await assertFilesKept(id);
      const audited = await run(["audit", "--env", ENV, "--customer", id, "--json"]);
      assert.equal(audited.code, 0, show(audited));
      assert.match(audited.stdout, new RegExp(`"detail": "encrypted: ${network}-ipsec"`));
    } finally {
      editEnvironment(root, ENV, (e) => { e.swarm.unencryptedOverlays = waiver; });
    }
    // and back, with the waiver: the rest of the suite crosses nodes, which needs ESP when encrypted
    await ok(["up", `${ENV}-${id}`]);
    await manager().getNetwork(network).inspect();
    await answersWithin(id, 60);
    await assertFilesKept(id);
  });

  it("an update whose new task fails its healthcheck is rolled back by Swarm; the old task kept serving and the files are there", async () => {
    const id = "sw-b";
    const before = (await findService(manager(), serviceOf(id)))!;
    const imageBefore = (before.Spec as any).TaskTemplate.ContainerSpec.Image as string;
    fs.writeFileSync(appPy, goodApp.replace('if path == "/healthz":', 'if path == "/healthz" and False:'));
    try {
      await ok(["up", ENV]); // the broken image, built and pushed
      const r = await run(["up", `${ENV}-${id}`]);
      assert.notEqual(r.code, 0, show(r));
      assert.match(r.stderr, /the update failed and Swarm rolled it back/, show(r));
      assert.match(r.stderr, /rolled back: swarm-sw-b runs/, show(r));
      const after = (await findService(manager(), serviceOf(id)))!;
      assert.match(after.UpdateStatus?.State ?? "", /rollback_completed/);
      assert.equal((after.Spec as any).TaskTemplate.ContainerSpec.Image, imageBefore);
      await answersWithin(id, 30);
      await assertFilesKept(id);
    } finally {
      fs.writeFileSync(appPy, goodApp);
      await ok(["up", ENV]);
    }
  });

  it("a worker's engine stopped: the other nodes' customers keep answering, and its own come back when it returns", async () => {
    const worker = cluster.nodes[2]!;
    const on = new Map<string, string>();
    for (const id of CUSTOMERS) on.set(id, (await nodeOf(id))!);
    const others = CUSTOMERS.filter((id) => on.get(id) !== worker.name);
    const own = CUSTOMERS.filter((id) => on.get(id) === worker.name);
    assert.equal(own.length, 2);
    await clusterScript(["stop-node", "3"]);
    try {
      for (const id of others) {
        const r = await get(id, "/");
        assert.equal(r.status, 200, `${id} on ${on.get(id)} while ${worker.name} is down: ${r.body}`);
      }
    } finally {
      await clusterScript(["start-node", "3"]);
    }
    for (const id of own) {
      await answersWithin(id, 240);
      assert.equal(await nodeOf(id), worker.name, `${id} came back elsewhere`);
      await assertFilesKept(id);
    }
  });

  it("fleet move takes a customer and every file it wrote to another node; the old node keeps its copy", async () => {
    const id = "sw-c";
    const from = (await nodeOf(id))!;
    const to = plainNodes().map((n) => n.name).find((n) => n !== from)!;
    await write(id, `${id}-before-move`);
    const refused = await run(["move", id, "--env", ENV, "--to", "nowhere"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /--to.*must be one of the nodes of 'swarm'/s);

    const before = await logSources(id, (seen) => seen.size > 0);
    const r = await ok(["move", id, "--env", ENV, "--to", to]);
    assert.match(r.stdout, new RegExp(`moved from ${from} to ${to} with its \\d+ files \\(checked\\)`));
    assert.equal(await nodeOf(id), to);
    await answersWithin(id, 60);
    await assertFilesKept(id);
    await write(id, `${id}-after-move`);
    const oldNode = new Dockerode(dockerodeOptions(cluster.nodes.find((n) => n.name === from)!.host));
    await oldNode.getVolume(`hf-${ENV}-${id}-data`).inspect(); // still there: a move deletes nothing

    // its lines are kept past the move: the lines of its tasks on the old node (that node's collector), and the new task's
    const after = await logSources(id, (seen) => [...seen].some((t) => !before.has(t)));
    assert.deepEqual([...before].filter((t) => !after.has(t)), [], `lines written on ${from} before the move are gone`);
    assert.ok([...after].some((t) => !before.has(t)), `no line of the task on ${to}`);
    const back = await run(["move", id, "--env", ENV, "--to", from]);
    assert.notEqual(back.code, 0, "moving back onto the old copy must be refused");
    assert.match(back.stderr, /already has a volume hf-swarm-sw-c-data with data in it.*nothing was changed/s);
    assert.equal(await nodeOf(id), to);
    await assertFilesKept(id);
  });

  it("deprovisioned and provisioned again, a customer goes back to the node with its data, even when another node is less loaded", async () => {
    // one whose node is not where a new customer would go once it is gone (the move above loaded one node)
    const on = new Map<string, string>();
    for (const id of live) on.set(id, (await nodeOf(id))!);
    const wouldGo = (without: string) => {
      // a starter customer goes to an ordinary node: the sandbox node is never its choice
      const load = new Map(plainNodes().map((n) => [n.name, 0]));
      for (const [c, n] of on) if (c !== without) load.set(n, load.get(n)! + 1);
      return plainNodes().map((n) => n.name).reduce((best, n) => (load.get(n)! < load.get(best)! ? n : best));
    };
    const id = live.filter((c) => !["sw-b", "sw-c"].includes(c)).find((c) => wouldGo(c) !== on.get(c));
    assert.ok(id, `no customer whose node a new customer would not take: ${JSON.stringify([...on])}`);
    returned = id;
    const home = on.get(id)!;
    await write(id, `${id}-before-deprovision`);
    await ok(["deprovision", id, "--env", ENV]);
    const again = await ok(["provision", id, "--env", ENV, "--plan", "starter"]);
    assert.match(again.stderr, new RegExp(`its data volume is on ${home}: it goes there`), show(again));
    assert.equal(await nodeOf(id), home, `${id} went to ${await nodeOf(id)}, not ${home} (where its data is; ${wouldGo(id)} is less loaded)`);
    await answersWithin(id, 60);
    await assertFilesKept(id);
  });

  it("a fleet move killed (-9) right after it stopped the service: the next fleet up of the customer brings it back, with its files", async () => {
    const id = live.find((c) => !["sw-b", "sw-c", returned].includes(c))!;
    const from = (await nodeOf(id))!;
    const to = plainNodes().map((n) => n.name).find((n) => n !== from)!;
    await write(id, `${id}-before-killed-move`);
    const stopped = async () => {
      const service = await findService(manager(), serviceOf(id));
      return (service?.Spec as any)?.Mode?.Replicated?.Replicas === 0 && !(await runningTask(manager(), serviceOf(id)));
    };
    const killed = await fleet(root, ["move", id, "--env", ENV, "--to", to],
      { env, timeoutMs: 300_000, killWhen: /stopping its service so nothing writes/, killOnceTrue: stopped, killGroup: true });
    assert.ok(killed.killed, `the move was not killed: ${show(killed)}`);
    assert.equal(await stopped(), true, "the service is left at 0 replicas");

    await ok(["up", `${ENV}-${id}`]);
    const service = (await findService(manager(), serviceOf(id)))!;
    assert.equal((service.Spec as any).Mode.Replicated.Replicas, 1);
    assert.equal(await nodeOf(id), from);
    await answersWithin(id, 60);
    await assertFilesKept(id);
  });

  it("--purge-data deletes the volume on every node that has one (a move leaves a copy), checked with each node's engine", async () => {
    const id = "sw-c";
    const volume = `hf-${ENV}-${id}-data`;
    const engines = cluster.nodes.map((n) => ({ name: n.name, engine: new Dockerode(dockerodeOptions(n.host)) }));
    const holders = [];
    for (const e of engines) if (await e.engine.getVolume(volume).inspect().then(() => true, () => false)) holders.push(e.name);
    assert.equal(holders.length, 2, `the moved customer's volume is on its old and new node: ${holders.join(", ")}`);
    const r = await ok(["deprovision", id, "--env", ENV, "--purge-data", "--yes"]);
    assert.match(r.stdout, new RegExp(`data volume ${volume} deleted on ${holders.join(", ")}, final backup: `), show(r));
    for (const e of engines) {
      await assert.rejects(e.engine.getVolume(volume).inspect(), /no such volume|not found/i, `${volume} is still on ${e.name}`);
    }
    live.splice(live.indexOf(id), 1);
    const none = await ok(["deprovision", id, "--env", ENV, "--purge-data", "--yes"]);
    assert.match(none.stdout, /no data volume hf-swarm-sw-c-data found: nothing to delete/);
  });

  it("prod promotes staging's image by repository digest, checking its base first, and refuses an image built from another base", async () => {
    const PROD = "swarmprod";
    await envFile(["--env", PROD, "--promote-from", ENV]);
    await ok(["up", PROD]);
    await ok(["provision", "sw-p", "--env", PROD]);
    // sw-a onto staging's newest image (a rolling update that succeeds), the one prod promoted
    await ok(["up", `${ENV}-sw-a`]);
    await assertFilesKept("sw-a");
    const stagingImage = ((await findService(manager(), serviceOf("sw-a")))!.Spec as any).TaskTemplate.ContainerSpec.Image as string;
    const prodImage = ((await findService(manager(), `hf-${PROD}-sw-p`))!.Spec as any).TaskTemplate.ContainerSpec.Image as string;
    assert.equal(prodImage, stagingImage);
    assert.match(prodImage, /^10\.232\.0\.11:5000\/hardened-fleet\/customer-app[^@]*@sha256:[a-f0-9]{64}$/);
    // its signature and SBOM are in the registry beside it (cosign's tags), read back by prod and by fleet sbom
    const evidence = (await readStack(ctx, PROD))!.outputs.supplyChain as { signature: { verified: boolean; trust: string }; scan: { waived: { id: string }[] } };
    assert.equal(evidence.signature.verified, true);
    assert.deepEqual(evidence.scan.waived.map((w) => w.id), ["CVE-2023-45853"]);
    assert.match(((await readStack(ctx, ENV))!.outputs.supplyChain as { sbom: { storedIn: string } }).sbom.storedIn, /^registry 10\.232\.0\.11:5000\//);
    const sbom = JSON.parse((await ok(["sbom", PROD, "--customer", "sw-p"])).stdout) as { components: { name: string }[] };
    assert.ok(sbom.components.some((c) => c.name === "zlib1g"));
    const prodCa = path.join(root, ".fleet", "swarmprod-ca.pem");
    fs.writeFileSync(prodCa, (await ok(["edge", "ca", "--env", PROD])).stdout);
    assert.equal((await get("sw-p", "/", "GET", undefined, PROD, prodCa)).status, 200);

    // a base other than the one staging's image was built from: prod stops before it changes anything
    editEnvironment(root, PROD, (e) => { e.image.base = cluster.bases["python-builder"]; });
    const refused = await run(["up", PROD]);
    assert.notEqual(refused.code, 0, show(refused));
    assert.match(refused.stderr, /cannot be promoted: it was built from base \S+python-base@sha256:\S+, but this environment pins \S+python-builder@sha256:\S+ \(image\.base\)/, show(refused));
    assert.equal((await get("sw-p", "/", "GET", undefined, PROD, prodCa)).status, 200);

    // fleet rollout on top of Swarm's updates: the staging-tier customers gated first (each task
    // audited on its node), then prod; sw-b, pinned by its rollback, moves onto the image again
    editEnvironment(root, PROD, (e) => { e.image.base = cluster.bases["python-base"]; });
    const rolled = await ok(["rollout", "--staging", ENV, "--prod", PROD]);
    assert.match(rolled.stderr + rolled.stdout, /healthy, audit clean/);
    const sbImage = ((await findService(manager(), serviceOf("sw-b")))!.Spec as any).TaskTemplate.ContainerSpec.Image as string;
    assert.equal(sbImage, prodImage);
    for (const id of live) await assertFilesKept(id);
  });

  it("after a new image, provisioning a customer again on a node that never pulled it checks its volume with that image (pulled first) and runs it", async () => {
    const manager0 = cluster.nodes[0]!.name;
    const on = new Map<string, string>();
    for (const id of live) on.set(id, (await nodeOf(id))!);
    const id = live.find((c) => on.get(c) !== manager0 && c !== "sw-b");
    assert.ok(id, `no customer on a worker: ${JSON.stringify([...on])}`);
    const imageBefore = ((await findService(manager(), serviceOf(id)))!.Spec as any).TaskTemplate.ContainerSpec.Image as string;
    await write(id, `${id}-before-new-image`);
    fs.writeFileSync(appPy, goodApp.replace("def health(", "# a build no node has pulled yet\ndef health("));
    try {
      await ok(["up", ENV]); // built and pushed: a digest no node has
      const r = await ok(["provision", id, "--env", ENV]);
      assert.doesNotMatch(r.stderr, /no such image/i, show(r));
      const imageAfter = ((await findService(manager(), serviceOf(id)))!.Spec as any).TaskTemplate.ContainerSpec.Image as string;
      assert.notEqual(imageAfter, imageBefore, "the customer runs the environment's new image");
      assert.equal(await nodeOf(id), on.get(id), "and stays on its node, with its data");
      await answersWithin(id, 60);
      await assertFilesKept(id);
    } finally {
      fs.writeFileSync(appPy, goodApp);
    }
  });

  it("backups run on the customer's node; that node lost, `fleet restore --node` brings the customer back on another node with every file", async () => {
    const worker = cluster.nodes[2]!;
    let host: BackupHost | undefined;
    try {
      host = await startBackupHost({ name: "hfbk2", subnet: 242, attach: { netns: `${CLUSTER}-lan`, bridge: "br0", address: `${clusterAddress(cluster, 50)}/24` } });
      editEnvironment(root, ENV, (e) => { e.backup = { repository: host!.appendUrl(ENV).replace(/\/$/, ""), username: host!.fleet.user }; });
      const settings = { passphrase: PASSPHRASE, engine: manager };
      await writeStackSecret(ctx, parseEnvironmentName(ENV), "hardened-fleet:backupCredential", host.fleet.password, settings);
      await ok(["backup", "init", "--env", ENV]);
      const onWorker: string[] = [];
      for (const c of live) if ((await nodeOf(c)) === worker.name) onWorker.push(c);
      const customer = onWorker[0];
      assert.ok(customer, `a customer runs on ${worker.name}`);
      await write(customer, "before-backup");
      const b = await ok(["backup", customer, "--env", ENV]);
      assert.match(b.stdout, new RegExp(`${customer}: snapshot [0-9a-f]{8}`));
      const workerEngine = new Dockerode(dockerodeOptions(worker.host));
      await workerEngine.getImage(BACKUP_IMAGE).inspect(); // the job ran there: the tool image was loaded into that node
      const records = fs.readFileSync(path.join(root, ".fleet", "backup-records", `${ENV}.jsonl`), "utf8");
      assert.match(records, new RegExp(`"customer":"${customer}".*"node":"${worker.name}"`));

      // the node is lost: its engine stops, with the customer's only copy of its data
      await clusterScript(["stop-node", "3"]);
      try {
        const to = cluster.nodes[1]!.name;
        const restored = await ok(["restore", customer, "--env", ENV, "--node", to]);
        assert.match(restored.stdout, new RegExp(`${customer}: restored snapshot [0-9a-f]{8} .* on ${to}; healthy`));
        assert.equal(await nodeOf(customer), to);
        await assertFilesKept(customer);
      } finally {
        await clusterScript(["start-node", "3"]);
      }
      assert.match(fs.readFileSync(path.join(root, `Pulumi.${ENV}-${customer}.yaml`), "utf8"), new RegExp(`node: ${cluster.nodes[1]!.name}`));
    } finally {
      await host?.destroy();
    }
  });

  it("fleet watch (inside the manager's namespace): a task on a worker node frozen is down within two probe intervals, its neighbours quiet; recovered once it resumes", async () => {
    const INTERVAL = 2;
    const TIMEOUT = 2;
    const ns = cluster.nodes[0]!.namespace;
    editEnvironment(root, ENV, (e) => { e.watch = { intervalSeconds: INTERVAL, timeoutSeconds: TIMEOUT }; });
    const receiver = await startReceiverIn(ns);
    // the sink before the watcher: it reads its sinks once, when it starts
    await writeStackSecret(ctx, parseEnvironmentName(ENV), "hardened-fleet:alertWebhookUrl", receiver.url, { passphrase: PASSPHRASE, engine: manager });
    const watcher = startFleet(root, ["watch", "--env", ENV, "--listen", "127.0.0.1:0"], env, ["ip", "netns", "exec", ns]);
    try {
      await watcher.waitFor(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
      const status = async () => JSON.parse((await ok(["status", "--env", ENV, "--json"])).stdout) as { subject: string; status: string; reason: string }[];
      const until = async <T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 60_000): Promise<T> => {
        const deadline = Date.now() + ms;
        for (;;) {
          const v = await fn();
          if (v) return v;
          if (Date.now() > deadline) assert.fail(`no ${what}; alerts: ${JSON.stringify(receiver.alerts())}\n${watcher.stderr().slice(-3000)}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      };
      await until("every customer up", async () => { const rows = await status(); return live.every((id) => rows.find((r) => r.subject === id)?.status === "up"); });
      // a customer whose task runs on a worker (not the manager, where the proxy is)
      let customer: string | undefined;
      let worker: (typeof cluster.nodes)[number] | undefined;
      for (const c of live) {
        const node = await nodeOf(c);
        if (!customer && node !== cluster.nodes[0]!.name) {
          customer = c;
          worker = cluster.nodes.find((n) => n.name === node);
        }
      }
      assert.ok(customer && worker, "a customer runs on a worker");
      const workerEngine = new Dockerode(dockerodeOptions(worker.host));
      const [task] = await workerEngine.listContainers({ filters: { label: [`io.hardened-fleet.customer=${customer}`, `io.hardened-fleet.environment=${ENV}`], status: ["running"] } });
      assert.ok(task, `the task container of ${customer} on ${worker.name}`);
      const pausedAt = Date.now();
      await workerEngine.getContainer(task.Id).pause();
      try {
        const down = await until("down alert", () => receiver.alerts().find((a) => a.customer === customer && a.kind === "down"), 30_000);
        assert.ok(Date.parse(down.at) - pausedAt <= (2 * INTERVAL + TIMEOUT + 1) * 1000, `down ${Date.parse(down.at) - pausedAt} ms after the pause`);
        assert.match(down.reason, /timeout through the proxy/);
        assert.equal((await status()).find((r) => r.subject === customer)?.status, "down");
      } finally {
        await workerEngine.getContainer(task.Id).unpause();
      }
      await until("recovered alert", () => receiver.alerts().find((a) => a.customer === customer && a.kind === "recovered"), 30_000);
      assert.deepEqual(receiver.alerts().filter((a) => !a.check).map((a) => `${a.customer} ${a.kind}`), [`${customer} down`, `${customer} recovered`]);
    } finally {
      process.kill(watcher.child.pid!, "SIGTERM");
      await watcher.exited;
      receiver.stop();
    }
  });

  it("a customer of the plan sandboxed runs on the sandbox node under runsc: it answers, keeps its files, passes the audit, is listed with its runtime; fleet move to an ordinary node is refused, and with --plan standard moves it out of the sandbox with its files", async () => {
    const id = "sw-box";
    const box = cluster.nodes.find((n) => n.sandbox === "gvisor");
    assert.ok(box, `the cluster has a sandbox node: ${JSON.stringify(cluster.nodes)}`);
    // without its node label a sandboxed plan's task could never be placed: refused before anything is made
    const setSandboxLabel = async (value: string | undefined) => {
      const n = ((await manager().listNodes()) as any[]).find((x) => x.Spec?.Labels?.["hardened-fleet.node"] === box.name);
      const Labels = { ...n.Spec.Labels };
      if (value === undefined) delete Labels["hardened-fleet.sandbox"];
      else Labels["hardened-fleet.sandbox"] = value;
      await manager().getNode(n.ID).update({ _query: { version: n.Version.Index }, _body: { ...n.Spec, Labels } });
    };
    await setSandboxLabel(undefined);
    try {
      const unlabelled = await run(["provision", id, "--env", ENV, "--plan", "sandboxed"]);
      assert.notEqual(unlabelled.code, 0, show(unlabelled));
      assert.match(unlabelled.stderr, new RegExp(`node ${box.name} has no node label hardened-fleet.sandbox=gvisor.*'docker node update --label-add hardened-fleet.sandbox=gvisor \\S+'.*Nothing was created`, "s"), show(unlabelled));
      assert.equal(fs.existsSync(path.join(root, `Pulumi.${ENV}-${id}.yaml`)), false, "no stack file was written");
      assert.equal(await findService(manager(), serviceOf(id)), undefined, "no service was made");
    } finally {
      await setSandboxLabel("gvisor");
    }
    // labelled again, and its engine's default runtime is runsc (as fleet checks too): it goes there
    const provisioned = await run(["provision", id, "--env", ENV, "--plan", "sandboxed"]);
    assert.equal(provisioned.code, 0, `provision ${id}: ${show(provisioned)}`);
    live.push(id);
    assert.equal(await nodeOf(id), box.name, `${id} (plan sandboxed) runs on the sandbox node`);
    const spec = (await findService(manager(), serviceOf(id)))!.Spec as any;
    assert.deepEqual(spec.TaskTemplate.Placement.Constraints, [`node.labels.hardened-fleet.node==${box.name}`, "node.labels.hardened-fleet.sandbox==gvisor"]);

    // through the proxy, over HTTPS; its files written through the app, owned by 1000:1000 inside the sandbox
    await answersWithin(id, 60);
    const hello = await get(id, "/");
    assert.equal(hello.status, 200, `${id}: ${hello.body}`);
    assert.equal((JSON.parse(hello.body) as { customer?: string }).customer ?? id, id);
    await write(id, `${id}-first`);
    await assertFilesKept(id);

    // its task's container, as the sandbox node's engine has it: runsc (that engine's default; the service names none)
    const task = (await runningTask(manager(), serviceOf(id)))!;
    const boxEngine = new Dockerode(dockerodeOptions(box.host));
    const info = await boxEngine.getContainer(task.containerId).inspect();
    assert.equal(info.HostConfig.Runtime, "runsc");

    // fleet audit of the environment, as in "fleet audit checks every node": it passes, its runtime check too
    const r = await run(["audit", "--env", ENV, "--json"]);
    const audit = JSON.parse(r.stdout) as { ok: boolean; containers: { container: string; customer: string; ok: boolean; checks: { id: string; ok: boolean; detail: string }[] }[] };
    const failures = audit.containers.flatMap((c) => c.checks.filter((x) => !x.ok).map((x) => `${c.container} ${x.id}: ${x.detail}`));
    assert.deepEqual(failures, []);
    assert.equal(r.code, 0, show(r));
    const mine = audit.containers.find((c) => c.customer === id);
    assert.ok(mine, `${id} is audited: ${audit.containers.map((c) => c.container).join(", ")}`);
    assert.ok(mine.container.startsWith(`${box.name}/`), mine.container);
    const runtime = mine.checks.find((x) => x.id === "runtime");
    assert.ok(runtime?.ok, JSON.stringify(mine.checks));
    assert.equal(runtime.detail, "runsc (gvisor sandbox)");
    assert.equal(audit.containers.find((c) => c.customer === "sw-a")!.checks.find((x) => x.id === "runtime")?.detail, "runc");
    // the sandbox node's own log collector (fleet's container there) runs under runc, named, and passes
    const collector = audit.containers.find((c) => c.container === `${box.name}/hf-${ENV}-edge-logs`);
    assert.equal(collector?.checks.find((x) => x.id === "runtime")?.detail, "runc", JSON.stringify(collector));

    // fleet list: runsc for it, runc for an ordinary customer
    const listed = JSON.parse((await ok(["list", "--env", ENV, "--json"])).stdout) as { customer: string; runtime: string }[];
    assert.equal(listed.find((c) => c.customer === id)?.runtime, "runsc", JSON.stringify(listed));
    assert.equal(listed.find((c) => c.customer === "sw-a")?.runtime, "runc", JSON.stringify(listed));

    // a move to an ordinary node would take it out of its sandbox: refused before anything changes
    const plain = plainNodes()[0]!.name;
    const versionBefore = (await findService(manager(), serviceOf(id)))!.Version?.Index;
    const refused = await run(["move", id, "--env", ENV, "--to", plain]);
    assert.notEqual(refused.code, 0, show(refused));
    assert.match(refused.stderr, /is not a sandbox node, and plan 'sandboxed' runs its customers in a gvisor sandbox/, show(refused));
    assert.equal((await findService(manager(), serviceOf(id)))!.Version?.Index, versionBefore, "the service is untouched");
    assert.equal((await runningTask(manager(), serviceOf(id)))?.containerId, task.containerId, "the same task still runs");
    assert.equal(await nodeOf(id), box.name);
    assert.match(fs.readFileSync(path.join(root, `Pulumi.${ENV}-${id}.yaml`), "utf8"), new RegExp(`node: ${box.name}`));
    await assertFilesKept(id);

    // the plan and the node change together: out of the sandbox, onto an ordinary node, every file with it
    const moved = await run(["move", id, "--env", ENV, "--to", plain, "--plan", "standard"]);
    assert.equal(moved.code, 0, show(moved));
    assert.equal(await nodeOf(id), plain);
    const after = (await runningTask(manager(), serviceOf(id)))!;
    const plainEngine = new Dockerode(dockerodeOptions(plainNodes()[0]!.host));
    assert.equal((await plainEngine.getContainer(after.containerId).inspect()).HostConfig.Runtime, "runc");
    assert.deepEqual(((await findService(manager(), serviceOf(id)))!.Spec as any).TaskTemplate.Placement.Constraints, [`node.labels.hardened-fleet.node==${plain}`]);
    assert.match(fs.readFileSync(path.join(root, `Pulumi.${ENV}-${id}.yaml`), "utf8"), /plan: standard/);
    await answersWithin(id, 60);
    await assertFilesKept(id);
  });

  it("every customer still has every file it wrote", async () => {
    for (const id of live) await assertFilesKept(id);
  });
});
