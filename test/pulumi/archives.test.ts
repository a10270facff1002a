/**
 * Archives of customer data on the real engines, the CLI as separate processes, faults for real: a
 * backup directory on a tiny tmpfs this test mounts, so an archive is cut short by ENOSPC.
 *
 *  - `fleet deprovision --purge-data` whose archive cannot be written keeps the volume, with the files
 *    written through the app, and says so; with room, the archive is a 0600 file in a 0700 directory
 *    (even under umask 000, and a 0755 directory is tightened), read back and checked, then the volume goes;
 *  - `fleet serve` whose provision job must archive a volume an old root deployment left (adoption)
 *    records a failed attempt with the ENOSPC reason and stays up, and nothing is half-made.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { customerNames } from "../../src/hardening/names";
import { JobQueue } from "../../src/webhooks/queue";
import { checkoutCompleted, deliver, getJson, JOBS_TOKEN, SECRET, sign } from "../webhooks/support";
import { fleet, killLeftovers, orphanedPlugins, show, startFleet } from "../support/cli";
import { customerContainers, engine, inVolume, removeCustomers, removeQuietly } from "../support/engine";
import { request } from "../support/http";
import { copyProject, customerUrlIn, editEnvironment, useEdge } from "../support/projectCopy";

const BASE = "hardened-fleet/python-base:bookworm";
const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("customer data archives on the real engines", { timeout: 20 * 60_000 }, () => {
  const ctx = copyProject();
  const root = ctx.root;
  const tiny = path.join(root, "tiny-backups");
  const backups = path.join(root, "backups");
  const db = path.join(root, ".fleet", "webhooks", "queue.db");
  const IDS = ["ar-a", "ar-b"];
  const pluginsBefore = orphanedPlugins();
  let mounted = false;
  const cleanDocker = async () => {
    await removeQuietly({ containers: ["ar-b-legacy"] });
    // one-shot containers a crashed run left on the volumes (they hold them in use)
    for (const id of IDS) {
      const users = await engine.listContainers({ all: true, filters: { volume: [customerNames("staging", id).dataVolume] } });
      await removeQuietly({ containers: users.map((c) => c.Id) });
    }
    await removeCustomers(IDS.map((id): [string, string] => ["staging", id]), [["staging", "edge-ar"]]);
  };

  before(async () => {
    await cleanDocker();
    useEdge(root, "staging", "edge-ar", 19400, 19420);
    editEnvironment(root, "staging", (env) => { env.deploy.healthTimeoutSeconds = 25; });
    fs.mkdirSync(tiny);
    // 256 KiB: less than one incompressible upload, so the archive is cut short by ENOSPC
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k,mode=0700", "hf-ar-tiny", tiny]);
    mounted = true;
    const up = await fleet(root, ["up", "staging"]);
    assert.equal(up.code, 0, show(up));
  });

  after(async () => {
    killLeftovers(pluginsBefore);
    await cleanDocker();
    if (mounted) execFileSync("umount", [tiny]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("deprovision --purge-data keeps the volume when its archive is cut short (ENOSPC); with room, a checked 0600 archive in 0700", async () => {
    const p = await fleet(root, ["provision", "ar-a", "--env", "staging"]);
    assert.equal(p.code, 0, show(p));
    const url = customerUrlIn(root, "staging", "ar-a");
    const big = randomBytes(600 * 1024);
    assert.equal((await request(`${url}/uploads?name=keep.txt`, "POST", "data of ar-a")).status, 201);
    assert.equal((await request(`${url}/uploads?name=big.bin`, "POST", big, { timeoutMs: 30_000 })).status, 201);
    const volume = customerNames("staging", "ar-a").dataVolume;

    // the backup directory fills up while the archive is written
    const full = await fleet(root, ["deprovision", "ar-a", "--env", "staging", "--purge-data", "--yes"], { env: { FLEET_BACKUP_DIR: tiny } });
    assert.equal(full.code, 1, show(full));
    assert.match(full.stderr, new RegExp(`^fleet: staging-ar-a: removed, but the data volume ${volume} is KEPT: its final backup could not be written and checked`, "m"));
    assert.match(full.stderr, new RegExp(`writing the archive ${tiny}/${volume}-\\d{8}T\\d{6}\\.tar\\.gz failed \\(ENOSPC`));
    assert.match(full.stderr, /run 'fleet deprovision ar-a --env staging --purge-data --yes' again/);
    assert.doesNotMatch(full.stderr, /\n\s+at /, "a stack trace: the error was not handled");
    assert.deepEqual(fs.readdirSync(tiny), [], "the partial archive is removed");
    assert.equal((await engine.getVolume(volume).inspect()).Name, volume);
    const kept = await inVolume(volume, "cat /data/uploads/keep.txt; echo; sha256sum /data/uploads/big.bin");
    assert.match(kept, /^data of ar-a\n/);
    assert.match(kept, new RegExp(`^${sha256(big)}  /data/uploads/big.bin$`, "m"));

    // with room (a 0755 directory from before, and umask 000 for the command): 0600 in 0700, checked, then deleted
    fs.mkdirSync(backups, { mode: 0o755 });
    fs.chmodSync(backups, 0o755);
    // archives of this volume already there under every name this run could pick (as a second node's
    // archive of the same second would be): the new one takes the next free name and leaves them alone
    const stampOf = (t: number) => new Date(t).toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
    const decoys = Array.from({ length: 300 }, (_, i) => `${volume}-${stampOf(Date.now() + (i - 2) * 1000)}.tar.gz`);
    for (const d of decoys) fs.writeFileSync(path.join(backups, d), "an older archive");
    const umask = process.umask(0);
    let purged: Awaited<ReturnType<typeof fleet>>;
    try {
      purged = await fleet(root, ["deprovision", "ar-a", "--env", "staging", "--purge-data", "--yes"], { env: { FLEET_BACKUP_DIR: backups } });
    } finally {
      process.umask(umask);
    }
    assert.equal(purged.code, 0, show(purged));
    const archive = new RegExp(`final backup: (${backups}/${volume}-\\d{8}T\\d{6}-2\\.tar\\.gz)`).exec(purged.stdout)?.[1];
    assert.ok(archive, show(purged));
    for (const d of decoys) assert.equal(fs.readFileSync(path.join(backups, d), "utf8"), "an older archive", `${d} was touched`);
    assert.match(purged.stderr, /read back and checked against the volume/);
    assert.equal(fs.statSync(archive).mode & 0o777, 0o600, "archive mode");
    assert.equal(fs.statSync(backups).mode & 0o777, 0o700, "backup directory mode");
    await assert.rejects(engine.getVolume(volume).inspect(), /no such volume/i);
    assert.equal(execFileSync("tar", ["-xOzf", archive, "./uploads/keep.txt"], { encoding: "utf8" }), "data of ar-a");
    assert.equal(sha256(execFileSync("tar", ["-xOzf", archive, "./uploads/big.bin"], { maxBuffer: 4 << 20 })), sha256(big));
  });

  it("fleet serve: an archive that fails with ENOSPC during a webhook job is a failed attempt with its reason; serve stays up", async () => {
    // an old deployment, run as root, left root-owned files in ar-b's volume: provision adopts (archives) it first
    const volume = customerNames("staging", "ar-b").dataVolume;
    await engine.createVolume({ Name: volume });
    const legacy = await engine.createContainer({ name: "ar-b-legacy", Image: BASE, Entrypoint: [], User: "0:0",
      Cmd: ["sh", "-c", "mkdir -p /data/uploads && head -c 600000 /dev/urandom > /data/uploads/old.bin && echo old > /data/uploads/old.txt"],
      HostConfig: { NetworkMode: "none", Mounts: [{ Type: "volume", Source: volume, Target: "/data" }] } });
    await legacy.start();
    assert.equal((await legacy.wait()).StatusCode, 0);
    const before = await inVolume(volume, "stat -c '%u %n' /data/uploads/old.bin /data/uploads/old.txt; sha256sum /data/uploads/old.bin");

    // the operator binds the old customer to its Stripe customer, so its payment may act on it (item 6)
    const bound = await fleet(root, ["bind", "ar-b", "--env", "staging", "--stripe-customer", "cus_ArB", "--subscription", "sub_ArB"]);
    assert.equal(bound.code, 0, show(bound));

    const served = startFleet(root, ["serve", "--env", "staging", "--listen", "127.0.0.1:0", "--db", db, "--max-attempts", "1"],
      { STRIPE_WEBHOOK_SECRET: SECRET, FLEET_JOBS_TOKEN: JOBS_TOKEN, FLEET_BACKUP_DIR: tiny });
    try {
      const base = (await served.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)\/webhooks\/stripe/))[1]!;
      const event = checkoutCompleted("evt_ar_adopt", 1_790_000_000, "ar-b", "starter");
      Object.assign(event.data.object, { customer: "cus_ArB", subscription: "sub_ArB" });
      const d = sign(event);
      assert.equal((await deliver(base, d.body, d.signature)).status, 200);

      const deadline = Date.now() + 5 * 60_000;
      let job = undefined as ReturnType<JobQueue["jobForEvent"]>;
      for (;;) {
        const q = JobQueue.open(db, { readOnly: true });
        job = q.jobForEvent(event.id);
        q.close();
        if (job && job.status !== "queued" && job.status !== "running") break;
        assert.ok(served.child.exitCode === null, `fleet serve ended during the job:\n${served.stderr().slice(-3000)}`);
        assert.ok(Date.now() < deadline, `the job did not end:\n${served.stderr().slice(-3000)}`);
        await sleep(500);
      }
      assert.equal(job!.status, "failed", `${job!.lastError}\n${served.stderr().slice(-3000)}`);
      assert.equal(job!.attempts, 1);
      assert.match(job!.lastError ?? "", new RegExp(`volume ${volume} was left unchanged: archiving it before changing owners failed: ` +
        `writing the archive ${tiny}/${volume}-\\d{8}T\\d{6}\\.tar\\.gz failed \\(ENOSPC`));
      // serve is up and answers
      assert.equal(served.child.exitCode, null);
      assert.equal((await getJson(`${base}/healthz`)).status, 200);
      // nothing half-made: no partial archive, no container, the volume exactly as the old deployment left it
      assert.deepEqual(fs.readdirSync(tiny), []);
      assert.deepEqual(await customerContainers("staging", "ar-b"), []);
      assert.equal(await inVolume(volume, "stat -c '%u %n' /data/uploads/old.bin /data/uploads/old.txt; sha256sum /data/uploads/old.bin"), before);
      assert.match(before, /^0 \/data\/uploads\/old\.bin$/m);
    } finally {
      served.child.kill("SIGTERM");
      await served.exited;
    }
  });
});
