/**
 * The backup host of the tests (test/support/backupHost.ts) with the host's restic and with the
 * backup image on the host engine: append-only for the fleet user, deletes only for the prune user
 * on the admin port, a stopped host fails a backup, a wrong repository password is refused, and a
 * hardened job container on a bridge network of the host engine reaches the namespace.
 * Needs root, the host engine and `npm run setup` (restic, rest-server, the backup image).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { BACKUP_IMAGE, ensureToolImage, RESTIC_VERSION, resticBinDir } from "../../src/backup/toolImage";
import { startBackupHost, type BackupHost, type Credential } from "../support/backupHost";
import { engine, removeQuietly } from "../support/engine";

const NETWORK = "hfbk-test-net";
const CONTAINER = "hfbk-test-restic";
const REPO = "staging/acme";
const REPO_PASSWORD = "correct horse battery staple";

interface Run { code: number; stdout: string; stderr: string }

describe("backup host: rest-server in a network namespace", () => {
  let host: BackupHost;
  let work: string;
  let source: string;
  const restic = path.join(resticBinDir(), "restic");

  /** the host's restic against `url` with `cred`; never throws, the exit code tells */
  function resticRun(url: string, cred: Credential, args: string[], repoPassword = REPO_PASSWORD, timeout = 120_000): Promise<Run> {
    return new Promise((resolve) => {
      execFile(restic, ["--repo", url, ...args], {
        timeout,
        env: {
          PATH: process.env.PATH, HOME: work, RESTIC_CACHE_DIR: path.join(work, "cache"),
          RESTIC_PASSWORD: repoPassword, RESTIC_REST_USERNAME: cred.user, RESTIC_REST_PASSWORD: cred.password,
        },
      }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  async function backup(): Promise<string> {
    const r = await resticRun(host.appendUrl(REPO), host.fleet, ["backup", "--json", "--host", "test", source]);
    assert.equal(r.code, 0, `backup failed: ${r.stderr}`);
    const summary = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { message_type: string; snapshot_id?: string })
      .find((m) => m.message_type === "summary");
    assert.ok(summary?.snapshot_id, `no summary in: ${r.stdout}`);
    return summary.snapshot_id;
  }

  async function snapshotIds(cred: Credential, url = host.appendUrl(REPO)): Promise<string[]> {
    const r = await resticRun(url, cred, ["snapshots", "--json"]);
    assert.equal(r.code, 0, `snapshots failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { id: string }[]).map((s) => s.id);
  }

  before(async () => {
    assert.ok(fs.existsSync(restic), `${restic} is missing: run \`npm run setup\` (or bash scripts/ensure-restic.sh)`);
    const pinned = /^RESTIC_VERSION=(\S+)$/m.exec(fs.readFileSync(path.join(__dirname, "../../scripts/restic-versions.env"), "utf8"))?.[1];
    assert.equal(pinned, RESTIC_VERSION, "scripts/restic-versions.env and src/backup/toolImage.ts pin different restic versions");
    work = fs.mkdtempSync(path.join(os.tmpdir(), "hfbk-test-"));
    source = path.join(work, "data");
    fs.mkdirSync(source);
    fs.writeFileSync(path.join(source, "customer.db"), "rows ".repeat(1000));
    await removeQuietly({ containers: [CONTAINER], networks: [NETWORK] });
    host = await startBackupHost({ name: "hfbk9", subnet: 249 });
  });

  after(async () => {
    await removeQuietly({ containers: [CONTAINER], networks: [NETWORK] });
    await host?.destroy();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  let first: string;

  it("the fleet user initialises a repository and backs up through the append-only port", async () => {
    assert.equal(host.address, "10.240.249.2");
    assert.equal(host.appendUrl(REPO), `rest:http://10.240.249.2:8000/${REPO}`);
    const init = await resticRun(host.appendUrl(REPO), host.fleet, ["init"]);
    assert.equal(init.code, 0, `init failed: ${init.stderr}`);
    assert.ok(fs.existsSync(path.join(host.dataDir, REPO, "config")), "the repository is in the data directory");
    first = await backup();
    assert.deepEqual(await snapshotIds(host.fleet), [first]);
  });

  it("the fleet user cannot forget a snapshot; the prune user on the admin port can", async () => {
    // restic 0.18.1's forget reports a snapshot it could not delete on stderr and still exits 0
    const denied = await resticRun(host.appendUrl(REPO), host.fleet, ["forget", first]);
    assert.match(denied.stderr, new RegExp(`unable to remove snapshot/${first}`), `forget through the append-only port: ${denied.stderr}`);
    assert.deepEqual(await snapshotIds(host.fleet), [first], "the snapshot is still there");
    assert.match(fs.readFileSync(path.join(host.logDir, "append.log"), "utf8"), new RegExp(`"DELETE /${REPO}/snapshots/${first} HTTP/1.1" 403`));
    const wrongPort = await resticRun(host.adminUrl(REPO), host.fleet, ["snapshots"]);
    assert.notEqual(wrongPort.code, 0, "the fleet user is no user of the admin port");
    const allowed = await resticRun(host.adminUrl(REPO), host.prune, ["forget", first]);
    assert.equal(allowed.code, 0, `forget by the prune user failed: ${allowed.stderr}`);
    assert.deepEqual(await snapshotIds(host.prune, host.adminUrl(REPO)), []);
  });

  it("a backup fails while the host is stopped and works again once it is started", async () => {
    await host.stop();
    // restic retries a refused connection for up to 15 minutes (backend-error-redesign, on by
    // default in 0.18): the job is cut off here after 15 s, as a job runner has to
    const down = await resticRun(host.appendUrl(REPO), host.fleet, ["backup", source], REPO_PASSWORD, 15_000);
    assert.notEqual(down.code, 0, "a backup to a stopped host succeeded");
    assert.match(down.stderr, /connection refused/);
    await host.start();
    assert.deepEqual(await snapshotIds(host.fleet), [], "the stopped host got no snapshot");
    const id = await backup();
    assert.deepEqual(await snapshotIds(host.fleet), [id]);
  });

  it("a wrong repository password is refused", async () => {
    const r = await resticRun(host.appendUrl(REPO), host.fleet, ["snapshots"], "not the password");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /wrong password/);
  });

  it("a hardened job container on a bridge network of the host engine reaches the backup host", async () => {
    await ensureToolImage(engine, BACKUP_IMAGE, engine); // the same engine: only checks that setup built it
    const ids = await snapshotIds(host.fleet);
    await engine.createNetwork({ Name: NETWORK, Driver: "bridge" });
    const container = await engine.createContainer({
      name: CONTAINER,
      Image: BACKUP_IMAGE,
      Cmd: ["restic", "snapshots", "--no-cache"],
      User: "1000:1000",
      Tty: true, // one output stream, no multiplexing
      Env: [`RESTIC_REPOSITORY=${host.appendUrl(REPO)}`, `RESTIC_PASSWORD=${REPO_PASSWORD}`,
        `RESTIC_REST_USERNAME=${host.fleet.user}`, `RESTIC_REST_PASSWORD=${host.fleet.password}`],
      HostConfig: {
        NetworkMode: NETWORK,
        CapDrop: ["ALL"],
        ReadonlyRootfs: true,
        Tmpfs: { "/tmp": "rw,noexec,nosuid,size=64m" },
        SecurityOpt: ["no-new-privileges:true"],
      },
    });
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const output = (await container.logs({ stdout: true, stderr: true })).toString("utf8");
    assert.equal(StatusCode, 0, `restic in the container failed: ${output}`);
    assert.match(output, new RegExp(ids[0]!.slice(0, 8)));
    const info = await container.inspect();
    assert.equal(info.Config.User, "1000:1000");
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
  });
});
