/**
 * Real Docker engine: builds the image exactly as the HardenedImage component renders it, runs a
 * container with exactly the settings HardenedService deploys (same ServiceSpec), and checks every
 * hardening property with `docker inspect` and from inside the container.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type Dockerode from "dockerode";
import type { EnvironmentConfig } from "../../src/config/schema";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { serviceSpec, type ServiceSpec } from "../../src/hardening/serviceSpec";
import { engine, python, removeQuietly, waitHealthy, writeKeyFile } from "../support/engine";
import { request } from "../support/http";
import { buildStagingImage } from "../support/image";

const TAG = "hardened-fleet/customer-app:engine-test";
/** the host port of the one container here that publishes (for the HTTP test only) */
const HTTP_PORT = 18190;

describe("hardened image and service on the real Docker engine", () => {
  let env: EnvironmentConfig;
  let imageId: string;
  let spec: ServiceSpec;
  let container: Dockerode.Container;
  let info: Dockerode.ContainerInspectInfo;

  before(async () => {
    ({ env, imageId } = await buildStagingImage(TAG));
    spec = serviceSpec(env, { id: "enginetest", environment: "staging", plan: "starter" }, imageId);
    await removeQuietly({ containers: [spec.containerName, httpSpec().containerName], networks: [spec.networkName],
      volumes: [spec.dataVolumeName, httpSpec().dataVolumeName, spec.secretFile!.volume] });
    await engine.createNetwork({ Name: spec.networkName, Driver: "bridge", Labels: spec.labels });
    await engine.createVolume({ Name: spec.dataVolumeName, Labels: spec.labels });
    await writeKeyFile(spec, "k".repeat(48));
    container = await engine.createContainer(toEngineCreateOptions(spec, {}));
    await container.start();
    info = await container.inspect();
  });

  after(async () => {
    if (spec) {
      await removeQuietly({ containers: [spec.containerName, httpSpec().containerName], networks: [spec.networkName],
        volumes: [spec.dataVolumeName, httpSpec().dataVolumeName, spec.secretFile!.volume] });
    }
  });

  /**
   * The same hardened settings, published on a loopback port for this test's HTTP client only: a
   * customer's container publishes nothing (its traffic comes through the edge proxy). Its own name
   * and volume, beside the unpublished container the other tests inspect.
   */
  function httpSpec(): ServiceSpec {
    const dataVolumeName = `${spec.dataVolumeName}-http`;
    return {
      ...spec,
      containerName: `${spec.containerName}-http`,
      dataVolumeName,
      data: { ...spec.data, volume: dataVolumeName },
      publish: [{ hostIp: "127.0.0.1", hostPort: HTTP_PORT, containerPort: spec.port }],
    };
  }

  it("image: numeric non-root USER, HEALTHCHECK, OCI and hardening labels", async () => {
    const image = await engine.getImage(imageId).inspect();
    assert.equal(image.Config.User, "1000:1000");
    assert.deepEqual(image.Config.Healthcheck?.Test, ["CMD", "/opt/venv/bin/python", "/app/healthcheck.py"]);
    const labels = image.Config.Labels ?? {};
    for (const key of ["org.opencontainers.image.source", "org.opencontainers.image.revision",
      "org.opencontainers.image.created", "org.opencontainers.image.version"]) {
      assert.ok(labels[key], `label ${key} missing`);
    }
    assert.equal(labels["io.hardened-fleet.nonroot-uid"], "1000");
    assert.equal(labels["io.hardened-fleet.profile"], "1");
    assert.deepEqual(image.Config.Cmd?.[0], "/opt/venv/bin/gunicorn");
  });

  it("becomes healthy through the image's own healthcheck", async () => {
    assert.equal(await waitHealthy(container), "healthy");
  });

  it("image: no compiler, make, pip, apt lists, package caches or setuid files", async () => {
    // with the app's interpreter, the one program the runtime must have (it may have no shell)
    const probe = await python(container, [
      "import os, shutil, stat",
      "found = [t for t in ['gcc', 'cc', 'make', 'pip', 'pip3', 'curl', 'wget'] if shutil.which(t)]",
      "found += [f for f in os.listdir('/opt/venv/bin') if 'pip' in f.lower()]",
      "for d in ['/var/lib/apt/lists', '/var/cache/apt', '/root/.cache']:",
      "    found += [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]",
      "dev = os.lstat('/').st_dev",
      "for r, ds, fs in os.walk('/'):",
      "    ds[:] = [d for d in ds if os.lstat(os.path.join(r, d)).st_dev == dev]",
      "    for f in fs:",
      "        st = os.lstat(os.path.join(r, f))",
      "        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o6000: found.append(os.path.join(r, f))",
      "print('\\n'.join(found))",
    ]);
    assert.equal(probe.exitCode, 0, probe.stderr);
    assert.equal(probe.stdout.trim(), "", `found in the image:\n${probe.stdout}`);
  });

  it("process runs as 1000:1000 with no effective capabilities", async () => {
    const id = await python(container, ["import os", "print(os.getuid(), os.getgid(), os.getgroups())"]);
    assert.match(id.stdout, /^1000 1000 \[(1000)?\]$/m);
    const status = await python(container, ["print(open('/proc/1/status').read())"]);
    assert.match(status.stdout, /^CapEff:\s+0000000000000000$/m);
    assert.match(status.stdout, /^CapBnd:\s+0000000000000000$/m);
    assert.match(status.stdout, /^NoNewPrivs:\s+1$/m);
  });

  it("root filesystem is read-only; /tmp is a writable noexec tmpfs", async () => {
    const root = await python(container, ["open('/probe', 'w')"]);
    assert.notEqual(root.exitCode, 0);
    assert.match(root.stderr, /Read-only file system/);
    const tmp = await python(container, ["open('/tmp/probe', 'w').write('x')", "print(open('/tmp/probe').read())"]);
    assert.equal(tmp.exitCode, 0, tmp.stderr);
    assert.equal(tmp.stdout.trim(), "x");
    const mounts = await python(container, ["print(open('/proc/mounts').read())"]);
    assert.match(mounts.stdout, /^tmpfs \/tmp tmpfs [^ ]*\bnoexec\b/m);
  });

  it("PIDs limit is in force inside the container's cgroup", async () => {
    const pids = await python(container, ["import os",
      "print(open(next(p for p in ['/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max'] if os.path.exists(p))).read())"]);
    assert.equal(pids.stdout.trim(), String(spec.pidsLimit));
  });

  it("backup, upload and restore create files owned by 1000 in the data volume", async () => {
    const published = httpSpec();
    await engine.createVolume({ Name: published.dataVolumeName, Labels: published.labels });
    const app = await engine.createContainer(toEngineCreateOptions(published, {}));
    await app.start();
    assert.equal(await waitHealthy(app), "healthy");
    const url = `http://127.0.0.1:${HTTP_PORT}`;
    assert.equal((await request(`${url}/uploads?name=report.txt`, "POST", "hello")).status, 201);
    const backup = await request(`${url}/backups`, "POST");
    assert.equal(backup.status, 201);
    const backupName = path.basename((backup.body as { backup: { path: string } }).backup.path);
    assert.equal((await request(`${url}/uploads?name=second.txt`, "POST", "again")).status, 201);
    const restore = await request(`${url}/restore?backup=${backupName}`, "POST");
    assert.equal(restore.status, 200, JSON.stringify(restore.body));
    const files = (await request(`${url}/files`)).body as { files: { path: string; uid: number; gid: number }[] };
    const paths = files.files.map((f) => f.path);
    for (const expected of [/\/data\/uploads\/report\.txt$/, /\/data\/backups\/backup_.*\.tar\.gz$/,
      /\/data\/uploads_backup_\d+/, /\/data\/instance\/app\.db\.backup_\d+/]) {
      assert.ok(paths.some((p) => expected.test(p)), `no file matching ${expected} in ${paths.join(", ")}`);
    }
    const foreign = files.files.filter((f) => f.uid !== 1000 || f.gid !== 1000);
    assert.deepEqual(foreign, []);
    // and from outside the app: the volume itself, as the host sees it
    const ls = await python(app, ["import os",
      "for r, ds, fs in os.walk('/data'):",
      "    for n in [r, *(os.path.join(r, f) for f in fs)]:",
      "        st = os.lstat(n)",
      "        if (st.st_uid, st.st_gid) != (1000, 1000): print(n)"]);
    assert.equal(ls.exitCode, 0, ls.stderr);
    assert.equal(ls.stdout.trim(), "");
  });

  it("docker inspect: limits, no-new-privileges, caps, no published port, own network, no host access", () => {
    const hc = info.HostConfig;
    assert.equal(info.Config.User, "1000:1000");
    assert.deepEqual(hc.CapDrop, ["ALL"]);
    assert.ok(!hc.CapAdd || hc.CapAdd.length === 0);
    assert.deepEqual(hc.SecurityOpt, ["no-new-privileges:true"]);
    assert.equal(hc.ReadonlyRootfs, true);
    assert.equal(hc.Privileged, false);
    assert.equal(hc.Memory, spec.memoryBytes);
    assert.equal(hc.MemorySwap, spec.memoryBytes);
    assert.equal(hc.NanoCpus, spec.cpus * 1e9);
    assert.equal(hc.PidsLimit, spec.pidsLimit);
    assert.deepEqual(hc.RestartPolicy, { Name: "on-failure", MaximumRetryCount: 5 });
    assert.deepEqual(hc.LogConfig, { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } });
    // a customer's container publishes nothing: its traffic comes through the environment's edge proxy
    assert.deepEqual(hc.PortBindings ?? {}, {});
    assert.equal(hc.PublishAllPorts ?? false, false);
    assert.deepEqual(Object.keys(info.NetworkSettings.Networks), [spec.networkName]);
    assert.equal(hc.NetworkMode, spec.networkName);
    assert.ok(!["host"].includes(String(hc.PidMode)) && !["host"].includes(String(hc.IpcMode)));
    assert.ok(!String(hc.UsernsMode).startsWith("host"));
    // the engine lists mounts in no fixed order
    assert.deepEqual(info.Mounts.map((m) => [m.Type, m.Name, m.Destination, m.RW]).sort((a, b) => String(a[2]).localeCompare(String(b[2]))),
      [["volume", spec.dataVolumeName, "/data", true], ["volume", spec.secretFile!.volume, "/run/secrets", false]]);
    assert.ok(!JSON.stringify(info.Mounts).includes("docker.sock"));
    assert.deepEqual(hc.Devices ?? [], []);
    assert.ok(info.Config.Healthcheck?.Test?.length);
  });
});
