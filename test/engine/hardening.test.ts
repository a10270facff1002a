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
import { execIn } from "../../src/engine/exec";
import { serviceSpec, type ServiceSpec } from "../../src/hardening/serviceSpec";
import { engine, removeQuietly, waitHealthy, writeKeyFile } from "../support/engine";
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
    const probe = await execIn(container, ["sh", "-c",
      "for t in gcc cc make pip pip3 curl wget; do command -v $t; done; ls /opt/venv/bin | grep -i pip; " +
      "find /var/lib/apt/lists /var/cache/apt /root/.cache -mindepth 1 -type f 2>/dev/null; " +
      "find / -xdev -type f -perm /6000 2>/dev/null; true"]);
    assert.equal(probe.stdout.trim(), "", `found in the image:\n${probe.stdout}`);
  });

  it("process runs as 1000:1000 with no effective capabilities", async () => {
    const id = await execIn(container, ["id"]);
    assert.match(id.stdout, /^uid=1000\b.*gid=1000\b/);
    const status = await execIn(container, ["cat", "/proc/1/status"]);
    assert.match(status.stdout, /^CapEff:\s+0000000000000000$/m);
    assert.match(status.stdout, /^CapBnd:\s+0000000000000000$/m);
    assert.match(status.stdout, /^NoNewPrivs:\s+1$/m);
  });

  it("root filesystem is read-only; /tmp is a writable noexec tmpfs", async () => {
    const root = await execIn(container, ["sh", "-c", "touch /probe"]);
    assert.notEqual(root.exitCode, 0);
    assert.match(root.stderr, /Read-only file system/);
    const tmp = await execIn(container, ["sh", "-c", "echo x > /tmp/probe && cat /tmp/probe"]);
    assert.equal(tmp.exitCode, 0);
    const mounts = await execIn(container, ["cat", "/proc/mounts"]);
    assert.match(mounts.stdout, /^tmpfs \/tmp tmpfs [^ ]*\bnoexec\b/m);
  });

  it("PIDs limit is in force inside the container's cgroup", async () => {
    const pids = await execIn(container, ["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"]);
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
    const ls = await execIn(app, ["sh", "-c", "find /data -not -user 1000 -o -not -group 1000"]);
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
