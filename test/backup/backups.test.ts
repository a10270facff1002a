/**
 * Backups on the real engines (target: docker), the CLI as separate processes, with a backup host in
 * a network namespace this test makes (test/support/backupHost.ts): a rest-server that is
 * append-only for the fleet host's account, and one with delete rights for pruning.
 *
 *  - customers writing uploads and SQLite rows in a loop while `fleet backup --all` runs (a second
 *    backup of one of them at the same time waits its turn); the data volume then destroyed; `fleet
 *    restore`: every row has its file with the bytes sent, every upload acknowledged before the backup
 *    is there, integrity_check ok, everything owned by 1000, the customer healthy, its neighbour untouched;
 *  - `fleet backups` lists the snapshots with why they were taken; `--into` restores for inspection
 *    without touching the customer; bad input is refused naming the flag;
 *  - a running customer restored to an older snapshot answers every request meanwhile, and the data
 *    it replaced is in the safety snapshot;
 *  - fleet killed (kill -9) while the customer is paused for a snapshot: the customer runs again at
 *    once, nothing lost, and the next backup works;
 *  - the backup host down: the backup fails loudly, is recorded, and `--due` retries it once the host
 *    is back; a second `--due` finds nothing due; a wrong password is refused;
 *  - the fleet host's credential cannot delete a snapshot; `fleet backup prune` with the other
 *    credential keeps exactly what the policy says;
 *  - a drill passes, then bytes flipped inside one customer's repository: the drill fails naming it;
 *  - deprovision takes a final snapshot, and --purge-data deletes the volume only once a snapshot is
 *    verified equal to it; with the backup host down nothing is removed.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { keptByPolicy } from "../../src/backup/retention";
import { resticBinDir } from "../../src/backup/toolImage";
import { parseEnvironmentName } from "../../src/config/targets";
import { customerNames } from "../../src/hardening/names";
import { readStackSecret, writeStackSecret } from "../../src/pulumi/stacks";
import { DEMO_PASSPHRASE } from "../../src/pulumi/workspace";
import { startBackupHost, type BackupHost } from "../support/backupHost";
import { fleet, killLeftovers, orphanedPlugins, show } from "../support/cli";
import { customerContainer, engine, inVolume, removeCustomers, removeQuietly } from "../support/engine";
import { request } from "../support/http";
import { copyProject, customerUrlIn, editEnvironment, useEdge } from "../support/projectCopy";

const run = promisify(execFile);
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ENV = "staging";
const IDS = ["bk-a", "bk-b"];
const settings = { passphrase: DEMO_PASSPHRASE, engine: () => engine };

interface Sent { name: string; sha: string; size: number; ackedAt: number }

/** Uploads to the customer in a loop until stopped; returns what it acknowledged (201), with when. */
function writer(url: string, prefix: string): { acked(): number; stop(): Promise<Sent[]> } {
  const sent: Sent[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const body = randomBytes(2000 + ((i * 7919) % 60_000));
      const name = `${prefix}-${i}.bin`;
      const r = await request(`${url}/uploads?name=${name}`, "POST", body, { timeoutMs: 30_000 }).catch(() => undefined);
      if (r?.status === 201) sent.push({ name, sha: sha256(body), size: body.length, ackedAt: Date.now() });
    }
  })();
  return { acked: () => sent.length, stop: async () => { running = false; await loop; return sent; } };
}

describe("backups with restic on the real engines (target: docker)", { timeout: 30 * 60_000 }, () => {
  const ctx = copyProject();
  const root = ctx.root;
  const pluginsBefore = orphanedPlugins();
  let host: BackupHost;
  const envTarget = parseEnvironmentName(ENV);
  const url = (id: string) => customerUrlIn(root, ENV, id);
  const ok = async (args: string[], env: Record<string, string> = {}) => {
    const r = await fleet(root, args, { env });
    assert.equal(r.code, 0, show(r));
    return r;
  };
  const clean = async () => {
    for (const id of IDS) {
      const users = await engine.listContainers({ all: true, filters: { volume: [customerNames(ENV, id).dataVolume] } });
      await removeQuietly({ containers: users.map((c) => c.Id) });
    }
    await removeCustomers(IDS.map((id): [string, string] => [ENV, id]), [[ENV, "edge-bk"]]);
    await removeQuietly({ volumes: ["bk-a-inspect", "bk-a-safety", "bk-b-after-purge", ...IDS.flatMap((id) => ["restore", "drill", "verify"].map((s) => `${customerNames(ENV, id).dataVolume}-${s}`))] });
  };
  /** restic on this host, with the fleet host's credential (what a compromised host could do) */
  const hostRestic = async (repoPath: string, args: string[], cred = host.fleet, port = 8000) => {
    const password = await readStackSecret(ctx, envTarget, "hardened-fleet:backupPassword", settings);
    const repo = `rest:http://${encodeURIComponent(cred.user)}:${encodeURIComponent(cred.password)}@${host.hostAddress}:${port}/${repoPath}/`;
    return run(path.join(resticBinDir(), "restic"), ["--no-cache", "-r", repo, ...args], { env: { ...process.env, RESTIC_PASSWORD: password! }, maxBuffer: 64 << 20, timeout: 120_000 })
      .then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));
  };
  const snapshotIds = async (id: string) => JSON.parse((await ok(["backups", id, "--env", ENV, "--json"])).stdout) as { id: string; time: string; tags: string[] }[];

  before(async () => {
    await clean();
    host = await startBackupHost({ name: "hfbk1", subnet: 241 });
    useEdge(root, ENV, "edge-bk", 19500, 19501);
    editEnvironment(root, ENV, (e) => {
      e.deploy.healthTimeoutSeconds = 60;
      e.backup = { repository: host.appendUrl(ENV).replace(/\/$/, ""), username: host.fleet.user, schedule: "6h",
        retention: { hourly: 1, daily: 4, weekly: 0, monthly: 0 } };
    });
    await ok(["up", ENV]);
    await writeStackSecret(ctx, envTarget, "hardened-fleet:backupCredential", host.fleet.password, settings);
    const init = await ok(["backup", "init", "--env", ENV]);
    assert.match(init.stdout, /password made/);
    assert.match(init.stderr, /Keep a copy off this host/);
    for (const id of IDS) await ok(["provision", id, "--env", ENV]);
  });

  after(async () => {
    killLeftovers(pluginsBefore);
    await clean();
    await host?.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("snapshots of customers writing during the backup restore every committed row and file, owned by 1000, after the volume is destroyed", async () => {
    const writers = IDS.map((id) => writer(url(id), id));
    // uploads acknowledged before the backup starts (a busy machine takes longer than an idle one's 1.5 s)
    for (const deadline = Date.now() + 60_000; writers.some((w) => w.acked() < 5) && Date.now() < deadline;) await sleep(250);
    const backupStarted = Date.now();
    // a second backup of bk-a at the same time waits for the first: one backup per customer at a time
    const [all, single] = await Promise.all([fleet(root, ["backup", "--all", "--env", ENV]), fleet(root, ["backup", "bk-a", "--env", ENV])]);
    const sent = await Promise.all(writers.map((w) => w.stop()));
    assert.equal(all.code, 0, show(all));
    assert.equal(single.code, 0, show(single));
    assert.match(all.stdout, /2 backed up, 0 failed/);
    assert.match(all.stderr, /bk-a: snapshot [0-9a-f]{8} \(manual\): \d+ files, .*; paused \d+ ms/);
    const ackedBefore = sent[0]!.filter((s) => s.ackedAt < backupStarted);
    assert.ok(ackedBefore.length > 3, "the writer had uploads acknowledged before the backup");
    const records = fs.readFileSync(path.join(root, ".fleet", "backup-records", `${ENV}.jsonl`), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { customer: string; at: string; durationMs: number; ok: boolean });
    const ofA = records.filter((r) => r.customer === "bk-a" && r.ok).map((r) => [Date.parse(r.at), Date.parse(r.at) + r.durationMs] as const).sort((a, b) => a[0] - b[0]);
    assert.equal(ofA.length, 2);
    assert.ok(ofA[1]![0] >= ofA[0]![1] - 50, `two backups of bk-a overlapped: ${JSON.stringify(ofA)}`);

    // the newest snapshot of bk-a is the one to come back; the disaster: container and volume gone
    const before = (await customerContainer(ENV, "bk-b"))!.Id;
    const volume = customerNames(ENV, "bk-a").dataVolume;
    const users = await engine.listContainers({ all: true, filters: { volume: [volume] } });
    for (const u of users) await engine.getContainer(u.Id).remove({ force: true });
    await engine.getVolume(volume).remove();

    const restored = await ok(["restore", "bk-a", "--env", ENV]);
    assert.match(restored.stdout, /bk-a: restored snapshot [0-9a-f]{8} \(\d+ files, .*\); healthy; the data it replaced is snapshot [0-9a-f]{8}/);
    assert.match(restored.stderr, /its container or data volume is gone: deploying it again first/);

    const check = (await request(`${url("bk-a")}/db/check`)).body as { integrity: string[]; rows: { name: string; size: number }[] };
    assert.deepEqual(check.integrity, ["ok"]);
    const rows = new Map(check.rows.map((r) => [r.name, r.size]));
    for (const s of ackedBefore) assert.equal(rows.get(s.name), s.size, `${s.name}, acknowledged before the backup, is in the database`);
    const byName = new Map(sent[0]!.map((s) => [s.name, s]));
    const hashes = await inVolume(volume, "cd /data/uploads && sha256sum *");
    const onDisk = new Map(hashes.trim().split("\n").map((l) => { const [h, n] = l.split(/\s+/); return [n!, h!] as const; }));
    for (const [name] of rows) assert.equal(onDisk.get(name), byName.get(name)!.sha, `${name}: the file of a committed row has the bytes sent`);
    const files = (await request(`${url("bk-a")}/files`)).body as { files: { path: string; uid: number; gid: number }[] };
    assert.deepEqual(files.files.filter((f) => f.uid !== 1000 || f.gid !== 1000), [], "everything restored is owned by 1000:1000");
    assert.equal((await request(`${url("bk-a")}/`)).status, 200);
    assert.equal((await customerContainer(ENV, "bk-b"))!.Id, before, "the neighbour was not touched");
  });

  it("fleet backups lists the snapshots and why; --into restores for inspection only; bad input is refused naming the flag", async () => {
    const list = await ok(["backups", "bk-a", "--env", ENV]);
    assert.match(list.stdout, /manual/);
    assert.match(list.stdout, /safety/, "the restore took a safety snapshot of the data it replaced");
    const running = (await customerContainer(ENV, "bk-a"))!;
    const into = await ok(["restore", "bk-a", "--env", ENV, "--into", "bk-a-inspect"]);
    assert.match(into.stdout, /restored into volume bk-a-inspect: \d+ files/);
    assert.match(await inVolume("bk-a-inspect", "ls /data/instance"), /app\.db/);
    const now = (await customerContainer(ENV, "bk-a"))!;
    assert.equal(now.Id, running.Id);
    assert.equal(now.State.StartedAt, running.State.StartedAt, "the customer was not restarted");
    for (const [args, flag] of [
      [["restore", "bk-a", "--env", ENV, "--into", customerNames(ENV, "bk-b").dataVolume], "--into"],
      [["restore", "bk-a", "--env", ENV, "--into", "bk-a-inspect"], "--into"],
      [["restore", "bk-a", "--env", ENV, "--snapshot", "xyz"], "--snapshot"],
      [["restore", "bk-a", "--env", ENV, "--snapshot", "0123456789abcdef"], "--snapshot"],
      [["restore", "bk-a", "--env", ENV, "--node", "node2"], "--node: is for target: swarm"],
      [["backup", "BK-A", "--env", ENV], "customer"],
    ] as [string[], string][]) {
      const r = await fleet(root, args);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, new RegExp(flag.replace(/-/g, "\\-")), show(r));
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    }
  });

  it("a running customer restored to an older snapshot answers every request meanwhile; what it replaced is in the safety snapshot", async () => {
    const older = (await snapshotIds("bk-a")).at(-1)!;
    const body = randomBytes(4000);
    assert.equal((await request(`${url("bk-a")}/uploads?name=after-snapshot.bin`, "POST", body)).status, 201);
    let running = true;
    const failures: string[] = [];
    let requests = 0;
    const client = (async () => {
      while (running) {
        requests++;
        const r = await request(`${url("bk-a")}/`, "GET", undefined, { timeoutMs: 30_000 }).catch((e: Error) => ({ status: 0, body: e.message }));
        if (r.status !== 200) failures.push(`${r.status} ${JSON.stringify(r.body).slice(0, 120)}`);
      }
    })();
    let restored;
    try {
      restored = await ok(["restore", "bk-a", "--env", ENV, "--snapshot", older.id.slice(0, 8)]);
    } finally {
      running = false;
      await client;
    }
    assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed during the restore`);
    assert.ok(requests > 5, `the client kept asking (${requests} requests)`);
    const safety = /the data it replaced is snapshot ([0-9a-f]{8})/.exec(restored.stdout)![1]!;
    const files = ((await request(`${url("bk-a")}/files`)).body as { files: { path: string }[] }).files.map((f) => f.path);
    assert.ok(!files.includes("/data/uploads/after-snapshot.bin"), "the restored data is the older snapshot's");
    await ok(["restore", "bk-a", "--env", ENV, "--snapshot", safety, "--into", "bk-a-safety"]);
    assert.match(await inVolume("bk-a-safety", "sha256sum /data/uploads/after-snapshot.bin"), new RegExp(sha256(body)));
  });

  it("fleet killed (kill -9) while the customer is paused: it runs again at once, nothing is lost, the next backup works", async () => {
    // 20 MB new since the last snapshot: restic reads it while the customer is paused, long enough to be killed then
    const body = randomBytes(20 << 20);
    assert.equal((await request(`${url("bk-b")}/uploads?name=before-kill.bin`, "POST", body, { timeoutMs: 60_000 })).status, 201);
    const killed = await fleet(root, ["backup", "bk-b", "--env", ENV], { killWhen: /pausing .* for a consistent copy/,
      killOnceTrue: async () => (await customerContainer(ENV, "bk-b"))?.State.Paused === true });
    assert.ok(killed.killed, show(killed));
    const deadline = Date.now() + 15_000;
    let state = (await customerContainer(ENV, "bk-b"))!.State;
    while (state.Paused && Date.now() < deadline) { await sleep(200); state = (await customerContainer(ENV, "bk-b"))!.State; }
    const guardLog = path.join(root, ".fleet", "pause-guard.log");
    assert.equal(state.Paused, false, `the guard resumed the customer; its log: ${fs.existsSync(guardLog) ? fs.readFileSync(guardLog, "utf8") : "none"}`);
    assert.match(fs.readFileSync(guardLog, "utf8"), /is gone: stopping backup job hf-bkjob-[0-9a-f]+, resuming/);
    assert.equal((await request(`${url("bk-b")}/`)).status, 200);
    const hashes = await inVolume(customerNames(ENV, "bk-b").dataVolume, "sha256sum /data/uploads/before-kill.bin");
    assert.match(hashes, new RegExp(sha256(body)));
    const again = await ok(["backup", "bk-b", "--env", ENV]);
    assert.match(again.stdout, /bk-b: snapshot [0-9a-f]{8}/);
    const left = await engine.listContainers({ all: true, filters: { label: ["io.hardened-fleet.backup-job"] } });
    assert.deepEqual(left.map((c) => c.Names[0]), [], "the killed job's containers were swept");
  });

  it("with the backup host down a backup fails loudly and is recorded; --due retries it once the host is back; a wrong password is refused", async () => {
    await host.stop();
    try {
      const down = await fleet(root, ["backup", "bk-a", "--env", ENV]);
      assert.equal(down.code, 1, show(down));
      assert.match(down.stderr, new RegExp(`backup of bk-a in 'staging' FAILED: the backup repository rest:http://${host.address.replace(/\./g, "\\.")}:8000/staging/bk-a ` +
        "cannot be reached from the engine \\(.*connection refused\\); nothing was paused or changed"));
      assert.doesNotMatch(down.stderr, /\n\s+at /);
      const listed = JSON.parse((await ok(["list", "--env", ENV, "--json"])).stdout) as { customer: string; lastBackup: { ok: boolean; error?: string } | null }[];
      assert.equal(listed.find((l) => l.customer === "bk-a")!.lastBackup!.ok, false);
      assert.equal((await request(`${url("bk-a")}/`)).status, 200, "the customer runs on");
    } finally {
      await host.start();
    }
    const due = await ok(["backup", "--due", "--env", ENV]);
    assert.match(due.stderr, /backing up bk-a/);
    assert.match(due.stdout, /[12] backed up, 0 failed/);
    const again = await ok(["backup", "--due", "--env", ENV]);
    assert.match(again.stdout, /0 backed up, 0 failed, 2 not due/);

    const password = (await readStackSecret(ctx, envTarget, "hardened-fleet:backupPassword", settings))!;
    await writeStackSecret(ctx, envTarget, "hardened-fleet:backupPassword", "not-the-password", settings);
    try {
      const wrong = await fleet(root, ["backup", "bk-a", "--env", ENV]);
      assert.equal(wrong.code, 1, show(wrong));
      assert.match(wrong.stderr, /refused the password hardened-fleet:backupPassword/);
    } finally {
      await writeStackSecret(ctx, envTarget, "hardened-fleet:backupPassword", password, settings);
    }
  });

  it("the fleet host's credential cannot delete a snapshot; prune with the other credential keeps exactly what the policy keeps", async () => {
    // older snapshots of bk-b, one a day 3 to 10 days ago, written as the fleet host would
    const dir = fs.mkdtempSync(path.join(root, "old-"));
    fs.writeFileSync(path.join(dir, "f"), "old data");
    for (let d = 3; d <= 10; d++) {
      const t = new Date(Date.now() - d * 86_400_000).toISOString().slice(0, 10);
      const r = await hostRestic(`${ENV}/bk-b`, ["backup", "--host", `${ENV}-bk-b`, "--time", `${t} 12:00:00`, dir]);
      assert.equal(r.code, 0, r.stderr);
    }
    const before = await snapshotIds("bk-b");
    const oldest = before[0]!;
    // restic exits 0 even so: the server's refusal is on stderr, and the snapshot stays
    const refused = await hostRestic(`${ENV}/bk-b`, ["forget", oldest.id]);
    assert.match(refused.stderr, /unable to remove/);
    assert.ok((await snapshotIds("bk-b")).some((s) => s.id === oldest.id), "the snapshot is still there");

    const credential = path.join(root, "prune-credential");
    fs.writeFileSync(credential, `${host.prune.password}\n`, { mode: 0o600 });
    const pruned = await ok(["backup", "prune", "--env", ENV, "--repository", host.adminUrl(ENV).replace(/\/$/, ""), "--username", host.prune.user,
      "--credential-file", credential]);
    assert.match(pruned.stdout, /bk-b/);
    const after = await snapshotIds("bk-b");
    // hourly 1, daily 4: the newest snapshot (today's), and the newest of each of the 3 days before that have one: 3, 4 and 5 days ago
    const days = after.map((s) => s.time.slice(0, 10));
    const expectedDays = [5, 4, 3].map((d) => new Date(Date.now() - d * 86_400_000).toISOString().slice(0, 10));
    assert.deepEqual(days.slice(0, 3), expectedDays);
    assert.equal(after.length, 4);
    assert.equal(after[3]!.id, before[before.length - 1]!.id, "the newest is kept");
    assert.deepEqual(new Set(after.map((s) => s.id)), keptByPolicy(before, { hourly: 1, daily: 4, weekly: 0, monthly: 0 }));
  });

  it("a drill restores, checks and boots every customer; bytes flipped in one repository fail its drill, naming it", async () => {
    const passed = await ok(["backup", "drill", "--env", ENV]);
    for (const id of IDS) assert.match(passed.stdout, new RegExp(`${id}\\s+passed`));
    const left = await engine.listContainers({ all: true, filters: { label: ["io.hardened-fleet.role=backup-drill"] } });
    assert.deepEqual(left, [], "the drill's containers are gone");
    // flip one byte in the middle of every data pack of bk-a's repository
    const packs = path.join(host.dataDir, ENV, "bk-a", "data");
    let flipped = 0;
    for (const sub of fs.readdirSync(packs)) {
      for (const f of fs.readdirSync(path.join(packs, sub))) {
        const file = path.join(packs, sub, f);
        const buf = fs.readFileSync(file);
        const at = Math.floor(buf.length / 2);
        buf[at] = buf[at]! ^ 0xff;
        fs.writeFileSync(file, buf);
        flipped++;
      }
    }
    assert.ok(flipped > 0);
    const failed = await fleet(root, ["backup", "drill", "--env", ENV]);
    assert.equal(failed.code, 1, show(failed));
    assert.match(failed.stdout, /bk-a\s+FAILED/);
    assert.match(failed.stdout, /bk-b\s+passed/);
    const listed = JSON.parse((await ok(["list", "--env", ENV, "--json"])).stdout) as { customer: string; lastDrill: { ok: boolean } | null }[];
    assert.equal(listed.find((l) => l.customer === "bk-a")!.lastDrill!.ok, false);
    assert.equal(listed.find((l) => l.customer === "bk-b")!.lastDrill!.ok, true);
  });

  it("deprovision takes a final snapshot, --purge-data deletes only a verified volume; with the backup host down nothing is removed", async () => {
    const body = randomBytes(3000);
    assert.equal((await request(`${url("bk-b")}/uploads?name=last-words.bin`, "POST", body)).status, 201);
    await host.stop();
    try {
      const refused = await fleet(root, ["deprovision", "bk-b", "--env", ENV, "--purge-data", "--yes"]);
      assert.equal(refused.code, 1, show(refused));
      assert.match(refused.stderr, /staging-bk-b: nothing was removed: the final snapshot of bk-b failed/);
      assert.ok(fs.existsSync(path.join(root, `Pulumi.${ENV}-bk-b.yaml`)));
      assert.equal((await request(`${url("bk-b")}/`)).status, 200);
    } finally {
      await host.start();
    }
    const purged = await ok(["deprovision", "bk-b", "--env", ENV, "--purge-data", "--yes"]);
    assert.match(purged.stdout, /data volume hf-staging-bk-b-data deleted, final snapshot [0-9a-f]{8} \(verified equal to it\)/);
    assert.match(purged.stderr, /restored and equal to hf-staging-bk-b-data, file by file/);
    await assert.rejects(engine.getVolume(customerNames(ENV, "bk-b").dataVolume).inspect(), /no such volume/i);
    const snaps = await snapshotIds("bk-b");
    assert.ok(snaps.filter((s) => s.tags.includes("hf-reason=final")).length >= 1);
    await ok(["restore", "bk-b", "--env", ENV, "--into", "bk-b-after-purge"]);
    assert.match(await inVolume("bk-b-after-purge", "sha256sum /data/uploads/last-words.bin"), new RegExp(sha256(body)));
  });
});
