/**
 * Real Docker engine: the runtime the template renders (FROM scratch, gathered by rootfs.py from the
 * pinned base) has no shell, package manager or setuid file, is at most 60% of the base's size, keeps
 * the Debian package records a scanner reads, and still runs the demo app hardened: healthy, its
 * uploads, backups and restores owned by 1000 in the volume.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type Dockerode from "dockerode";
import { BACKUP_IMAGE } from "../../src/backup/toolImage";
import type { EnvironmentConfig } from "../../src/config/schema";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { execIn, type ExecResult } from "../../src/engine/exec";
import { serviceSpec, type ServiceSpec } from "../../src/hardening/serviceSpec";
import { engine, inVolume, removeQuietly, waitHealthy, writeKeyFile } from "../support/engine";
import { request } from "../support/http";
import { buildStagingImage } from "../support/image";

const TAG = "hf25-rt-app:test";
const CONTAINER = "hf25-rt-app";
const NETWORK = "hf25-rt-net";
const DATA = "hf25-rt-data";
const SECRETS = "hf25-rt-secrets";
const LABELS = { "hf25-rt": "runtime-image-test" };
/** the base today's runtime stage started from; the shell-less runtime must be at most this share of it */
const MAX_SHARE_OF_BASE = 0.6;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `tar -tv` of the container's whole filesystem (docker export): one line per entry. */
async function exportListing(container: Dockerode.Container): Promise<string[]> {
  const stream = await container.export();
  const tar = spawn("tar", ["-tvf", "-"], { stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  tar.stdout.on("data", (b: Buffer) => out.push(b));
  tar.stderr.on("data", (b: Buffer) => err.push(b));
  stream.pipe(tar.stdin);
  const code = await new Promise<number | null>((resolve) => tar.on("close", resolve));
  if (code !== 0) throw new Error(`tar -tv of the export failed: ${Buffer.concat(err).toString()}`);
  return Buffer.concat(out).toString("utf8").split("\n").filter(Boolean);
}

/** path (no leading slash) -> mode string, from `tar -tv` lines */
function entries(listing: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of listing) {
    const m = /^(\S{10})\s+\S+\s+\d+\s+\S+\s+\S+\s+(.*?)(?: -> .*)?$/.exec(line);
    if (m) map.set(m[2]!.replace(/\/$/, ""), m[1]!);
  }
  return map;
}

describe("shell-less runtime image on the real Docker engine", () => {
  let env: EnvironmentConfig;
  let imageId: string;
  let spec: ServiceSpec;
  let container: Dockerode.Container;
  let port: number;
  let files: Map<string, string>;

  const py = (code: string): Promise<ExecResult> => execIn(container, ["/opt/venv/bin/python", "-c", code]);
  const cleanup = () => removeQuietly({ containers: [CONTAINER], networks: [NETWORK], volumes: [DATA, SECRETS] });

  before(async () => {
    await cleanup();
    ({ env, imageId } = await buildStagingImage(TAG));
    port = await freePort();
    const base = serviceSpec(env, { id: "rtimage", environment: "staging", plan: "starter" }, imageId);
    // the customer's hardened settings under this test's own names and labels (no fleet audit lists it)
    spec = {
      ...base, containerName: CONTAINER, networkName: NETWORK, dataVolumeName: DATA, data: { ...base.data, volume: DATA },
      secretFile: { ...base.secretFile!, volume: SECRETS }, labels: LABELS, identityLabels: LABELS,
      publish: [{ hostIp: "127.0.0.1", hostPort: port, containerPort: base.port }],
    };
    await engine.createNetwork({ Name: NETWORK, Driver: "bridge", Labels: LABELS });
    await engine.createVolume({ Name: DATA, Labels: LABELS });
    await writeKeyFile(spec, "k".repeat(48));
    container = await engine.createContainer(toEngineCreateOptions(spec, {}));
    await container.start();
    files = entries(await exportListing(container));
  });

  after(async () => {
    await cleanup();
    await removeQuietly({ images: [TAG] });
  });

  it("is FROM scratch: no shell, no apt or dpkg, no setuid or setgid file", () => {
    assert.ok(files.has("usr/bin/python3.11"), "the interpreter is missing");
    const tools = ["sh", "bash", "dash", "busybox", "apt", "apt-get", "dpkg", "dpkg-query", "su", "login", "mount", "passwd"];
    const found = [...files.keys()].filter((p) => /^(usr\/)?s?bin\//.test(p) && tools.includes(path.basename(p)));
    assert.deepEqual(found, []);
    assert.ok(!files.has("var/lib/dpkg/status") && !files.has("var/lib/apt"), "a dpkg database or apt state is left");
    const setid = [...files].filter(([, mode]) => /^...[sS]|^......[sS]/.test(mode)).map(([p]) => p);
    assert.deepEqual(setid, []);
  });

  it("an exec of /bin/sh fails", async () => {
    for (const sh of ["/bin/sh", "sh", "/usr/bin/dash"]) {
      const r = await execIn(container, [sh, "-c", "echo reached"]).catch((err: Error) => ({ exitCode: -1, stdout: "", output: err.message }));
      assert.notEqual(r.exitCode, 0, `${sh} ran: ${r.output}`);
      assert.doesNotMatch(r.stdout, /reached/);
    }
  });

  it("is at most 60% of the base's size", async () => {
    const image = await engine.getImage(imageId).inspect();
    const base = await engine.getImage(env.image.mode === "build" ? env.image.base : "").inspect();
    const share = image.Size / base.Size;
    assert.ok(share <= MAX_SHARE_OF_BASE,
      `runtime ${(image.Size / 1e6).toFixed(1)} MB is ${(100 * share).toFixed(0)}% of the base's ${(base.Size / 1e6).toFixed(1)} MB`);
  });

  it("keeps the labels, user, healthcheck, entrypoint and command of the template", async () => {
    const image = await engine.getImage(imageId).inspect();
    assert.equal(image.Config.User, "1000:1000");
    assert.deepEqual(image.Config.Healthcheck?.Test, ["CMD", "/opt/venv/bin/python", "/app/healthcheck.py"]);
    assert.deepEqual(image.Config.Entrypoint, ["/opt/venv/bin/python", "/opt/hardened-fleet/supervise.py"]);
    assert.equal(image.Config.Cmd?.[0], "/opt/venv/bin/gunicorn");
    assert.equal(image.Config.Labels?.["io.hardened-fleet.nonroot-uid"], "1000");
    assert.ok(image.Config.Env?.includes("LANG=C.UTF-8"));
  });

  it("becomes healthy, run hardened (read-only root, no capabilities, 1000:1000)", async () => {
    assert.equal(await waitHealthy(container), "healthy");
    const info = await container.inspect();
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(info.HostConfig.CapDrop, ["ALL"]);
    const status = await py("print(open('/proc/1/status').read())");
    assert.match(status.stdout, /^Uid:\s+1000\s/m);
    assert.match(status.stdout, /^CapEff:\s+0000000000000000$/m);
  });

  it("loads the stdlib modules the app, its healthcheck and gunicorn import, and their C libraries", async () => {
    const r = await py([
      "import datetime, hashlib, hmac, json, os, shutil, socket, sqlite3, tarfile, threading, urllib.request, gzip, zlib, ssl",
      "import gunicorn.app.wsgiapp, gunicorn.arbiter, gunicorn.glogging, gunicorn.http.wsgi, gunicorn.workers.sync, gunicorn.workers.gthread",
      "import ctypes, decimal, lzma, bz2, uuid, email.utils, logging.config, multiprocessing, asyncio, xml.etree.ElementTree",
      "db = sqlite3.connect(':memory:'); db.execute('create table t (x)')",
      "assert zlib.decompress(zlib.compress(b'x' * 100)) == b'x' * 100",
      "print(hashlib.sha256(b'').hexdigest()[:8], hashlib.new('sha3_256').name, ssl.OPENSSL_VERSION.split()[0], sqlite3.sqlite_version_info[0])",
    ].join("\n"));
    assert.equal(r.exitCode, 0, r.output);
    assert.equal(r.stdout.trim(), "e3b0c442 sha3_256 OpenSSL 3");
    const gone = await py("import importlib.util as u; print([m for m in ('idlelib', 'tkinter', 'lib2to3', 'ensurepip', 'test', 'readline') if u.find_spec(m)])");
    assert.equal(gone.stdout.trim(), "[]");
  });

  it("keeps the package records a scanner reads: os-release and status.d for each package left", async () => {
    assert.ok(files.has("etc/os-release") && files.has("etc/debian_version"));
    const records = [...files.keys()].filter((p) => p.startsWith("var/lib/dpkg/status.d/")).map((p) => path.basename(p));
    for (const pkg of ["libc6", "zlib1g", "libssl3", "libsqlite3-0", "python3.11-minimal", "libpython3.11-stdlib"]) {
      assert.ok(records.includes(pkg), `no status.d record of ${pkg} in ${records.join(" ")}`);
    }
    for (const pkg of ["dpkg", "apt", "bash", "dash", "coreutils", "libreadline8", "libncursesw6"]) {
      assert.ok(!records.includes(pkg), `a record of ${pkg}, whose files are not in the runtime`);
    }
    for (const pkg of ["zlib1g", "python3.11-minimal"]) {
      const r = await py(`print(open('/var/lib/dpkg/status.d/${pkg}').read())`);
      assert.match(r.stdout, new RegExp(`^Package: ${pkg.replace(/\./g, "\\.")}$`, "m"));
      assert.match(r.stdout, /^Version: \S+$/m);
      assert.match(r.stdout, /^Status: install ok installed$/m);
    }
    const os = await py("print(open('/etc/os-release').read())");
    assert.match(os.stdout, /^ID=debian$/m);
  });

  it("upload, backup and restore write files owned by 1000:1000 in the volume", async () => {
    assert.equal(await waitHealthy(container), "healthy");
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await request(`${url}/uploads?name=report.txt`, "POST", "hello")).status, 201);
    const backup = await request(`${url}/backups`, "POST");
    assert.equal(backup.status, 201, JSON.stringify(backup.body));
    const backupName = path.basename((backup.body as { backup: { path: string } }).backup.path);
    assert.equal((await request(`${url}/uploads?name=second.txt`, "POST", "again")).status, 201);
    const restore = await request(`${url}/restore?backup=${backupName}`, "POST");
    assert.equal(restore.status, 200, JSON.stringify(restore.body));
    // from outside the app: a one-shot container of the tools image with the volume read-only
    const listing = await inVolume(DATA, "cd /data && find . -mindepth 1 -exec stat -c '%u:%g %n' {} +", BACKUP_IMAGE);
    const lines = listing.trim().split("\n");
    for (const expected of [/^\S+ \.\/uploads\/report\.txt$/, /^\S+ \.\/backups\/backup_.*\.tar\.gz$/, /^\S+ \.\/uploads_backup_\d+/,
      /^\S+ \.\/instance\/app\.db\.backup_\d+/]) {
      assert.ok(lines.some((l) => expected.test(l)), `no file matching ${expected} in\n${listing}`);
    }
    assert.deepEqual(lines.filter((l) => !l.startsWith("1000:1000 ")), []);
  });

  it("exits 143 when the engine stops it (the supervisor runs without a shell)", async () => {
    await container.stop({ t: 10 });
    assert.equal((await container.inspect()).State.ExitCode, 143);
  });
});
