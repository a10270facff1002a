/**
 * Zero downtime through the edge proxy, on the real engines, with the fleet CLI as separate
 * processes: while a plan change, a rollout and a failing deploy run, a client keeps requesting
 * https://zd-acme.<env>.localhost/ through the environment's proxy (certificate checked against its
 * local CA), and every failed request is counted. The proxy and the customers pass the audit, and no
 * customer container publishes a port.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { fleet, killLeftovers, orphanedPlugins, show } from "../support/cli";
import { customerContainer, customerContainers, engine, removeCustomers } from "../support/engine";
import { execIn } from "../../src/engine/exec";
import { request } from "../support/http";
import { copyProject, customerUrlIn, dropEncryptionSalt, editEnvironment, useEdge } from "../support/projectCopy";

const PASSPHRASE = "edge-test-passphrase";
const CUSTOMERS: [string, string][] = [["staging", "zd-acme"], ["prod", "zd-acme"]];
/** a second staging customer, for the isolation case only */
const NEIGHBOUR: [string, string] = ["staging", "zd-globex"];
const EDGES: [string, string][] = [["staging", "edge-zd"], ["prod", "edge-zd"]];

interface Probe {
  ok: number;
  failed: { at: string; what: string }[];
  /** the app version of each answer, in order */
  versions: string[];
  stop(): Promise<void>;
}

/** Requests `url` back to back (a short pause between them) until stopped; counts what failed. */
function keepRequesting(url: string): Probe {
  let running = true;
  const probe: Probe = { ok: 0, failed: [], versions: [], stop: async () => { running = false; await loop; } };
  const loop = (async () => {
    while (running) {
      try {
        const r = await request(`${url}/`, "GET", undefined, { timeoutMs: 5000 });
        const version = (r.body as { version?: string }).version;
        if (r.status === 200 && version) {
          probe.ok++;
          if (probe.versions.at(-1) !== version) probe.versions.push(version);
        } else {
          probe.failed.push({ at: new Date().toISOString(), what: `${r.status} ${JSON.stringify(r.body).slice(0, 120)}` });
        }
      } catch (err) {
        probe.failed.push({ at: new Date().toISOString(), what: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return probe;
}

describe("zero-downtime updates through the edge proxy (real engines, CLI processes)", { timeout: 20 * 60_000 }, () => {
  const ctx = copyProject();
  const root = ctx.root;
  const appDir = path.join(root, "examples", "customer-app");
  const appPy = path.join(appDir, "app.py");
  const goodApp = fs.readFileSync(appPy, "utf8");
  const env = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
  const pluginsBefore = orphanedPlugins();
  const ok = async (args: string[]) => {
    const r = await fleet(root, args, { env, timeoutMs: 900_000 });
    assert.equal(r.code, 0, `fleet ${args.join(" ")}: ${show(r)}`);
    return r;
  };
  const urls = () => CUSTOMERS.map(([environment, id]) => customerUrlIn(root, environment, id));

  /** Runs `during` while both customers are requested; returns what each client saw. */
  async function underLoad(during: () => Promise<void>): Promise<Probe[]> {
    const probes = urls().map(keepRequesting);
    try {
      await new Promise((r) => setTimeout(r, 500)); // a few answers from before
      await during();
      await new Promise((r) => setTimeout(r, 500)); // and from after
    } finally {
      for (const p of probes) await p.stop();
    }
    return probes;
  }

  const noneFailed = (probes: Probe[], what: string) => {
    for (const [i, p] of probes.entries()) {
      const [environment, id] = CUSTOMERS[i]!;
      assert.deepEqual(p.failed, [], `${what}: ${p.failed.length} of ${p.ok + p.failed.length} requests to ${environment}-${id} failed`);
      assert.ok(p.ok >= 20, `${what}: only ${p.ok} requests to ${environment}-${id} were made`);
    }
  };

  before(async () => {
    dropEncryptionSalt(root, "staging");
    dropEncryptionSalt(root, "prod");
    useEdge(root, "staging", "edge-zd", 18700, 18701);
    useEdge(root, "prod", "edge-zd", 18702, 18703);
    for (const stack of ["staging", "prod"]) {
      editEnvironment(root, stack, (e) => {
        e.deploy.healthTimeoutSeconds = 20;
        e.app.healthcheck.intervalSeconds = 2;
        e.app.healthcheck.startPeriodSeconds = 2;
      });
    }
    await removeCustomers([...CUSTOMERS, NEIGHBOUR], EDGES);
    await ok(["up", "staging"]);
    await ok(["provision", "zd-acme", "--env", "staging", "--plan", "starter"]);
    await ok(["up", "prod"]);
    await ok(["provision", "zd-acme", "--env", "prod", "--plan", "starter"]);
  });

  after(async () => {
    killLeftovers(pluginsBefore);
    await removeCustomers([...CUSTOMERS, NEIGHBOUR], EDGES);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("customers answer only through the proxy: https with the local CA, no published port, the proxy audit-clean", async () => {
    for (const [i, url] of urls().entries()) {
      const [environment, id] = CUSTOMERS[i]!;
      assert.match(url, new RegExp(`^https://${id}\\.${environment}\\.localhost:1870[02]$`));
      const r = await request(`${url}/healthz`);
      assert.equal(r.status, 200, url);
      const info = await customerContainer(environment, id);
      assert.deepEqual(info!.HostConfig.PortBindings ?? {}, {}, `${environment}-${id} publishes a port`);
    }
    const proxy = await engine.getContainer("hf-staging-edge-zd").inspect();
    assert.deepEqual(Object.keys(proxy.HostConfig.PortBindings ?? {}).sort(), ["8080/tcp", "8443/tcp"]);
    assert.equal(proxy.Config.User, "1000:1000");
    assert.deepEqual(proxy.HostConfig.CapAdd ?? [], []);
    // this suite's containers (others on this engine, a demo's say, are not this test's to judge)
    const audit = await fleet(root, ["audit"], { env });
    assert.match(audit.stdout, /hf-staging-edge-zd .*PASS/, show(audit));
    assert.match(audit.stdout, /hf-prod-edge-zd .*PASS/);
    assert.match(audit.stdout, /hf-staging-zd-acme-[0-9a-f]{8} .*PASS/);
    assert.match(audit.stdout, /hf-prod-zd-acme-[0-9a-f]{8} .*PASS/);
    // plain HTTP answers with a redirect to HTTPS on the proxy's published port
    const redirect = await request("http://127.0.0.1:18701/x");
    assert.equal(redirect.status, 308);
  });

  it("customers cannot reach each other's containers; each reaches the proxy only on its own network", async () => {
    await ok(["provision", NEIGHBOUR[1], "--env", NEIGHBOUR[0]]);
    const acme = (await customerContainer("staging", "zd-acme"))!;
    const globex = (await customerContainer(...NEIGHBOUR))!;
    const proxy = await engine.getContainer("hf-staging-edge-zd").inspect();
    const ipOn = (info: typeof acme, network: string) => info.NetworkSettings.Networks[network]!.IPAddress;
    // python in the app's image: a TCP connect with a 2 s timeout, exit 0 when it connects
    const connects = async (from: typeof acme, host: string, port: number) => {
      const script = `import socket,sys\ntry:\n socket.create_connection((${JSON.stringify(host)}, ${port}), 2).close()\nexcept OSError:\n sys.exit(1)`;
      return (await execIn(engine.getContainer(from.Id), ["/opt/venv/bin/python", "-c", script])).exitCode === 0;
    };
    assert.equal(await connects(acme, ipOn(globex, "hf-staging-zd-globex-edge"), 8000), false, "zd-acme reached zd-globex's container");
    assert.equal(await connects(acme, ipOn(proxy, "hf-staging-zd-globex-edge"), 8443), false, "zd-acme reached the proxy on zd-globex's network");
    assert.equal(await connects(acme, ipOn(proxy, "hf-staging-zd-acme-edge"), 8443), true, "zd-acme cannot reach the proxy on its own network");
    await ok(["deprovision", NEIGHBOUR[1], "--env", NEIGHBOUR[0], "--purge-data", "--yes"]);
  });

  it("a plan change: the new container starts beside the old one, traffic switches, 0 failed requests", async () => {
    const before = (await customerContainer("staging", "zd-acme"))!.Name;
    const probes = await underLoad(async () => { await ok(["provision", "zd-acme", "--env", "staging", "--plan", "standard"]); });
    noneFailed(probes, "plan change");
    const after = (await customerContainer("staging", "zd-acme"))!;
    assert.notEqual(after.Name, before, "the plan change made no new container");
    assert.equal(after.HostConfig.Memory, 256 * 1024 * 1024);
    assert.deepEqual(await customerContainers("staging", "zd-acme"), [after.Name.replace(/^\//, "")]);
  });

  it("a rollout of a new version through staging and prod: 0 failed requests, and each switch happens once", async () => {
    fs.writeFileSync(path.join(appDir, "VERSION"), "1.1.0\n");
    const probes = await underLoad(async () => { await ok(["rollout"]); });
    noneFailed(probes, "rollout");
    for (const p of probes) assert.deepEqual(p.versions, ["1.0.0", "1.1.0"], "once the new version answered, the old one never did again");
  });

  it("a version whose healthcheck fails: its container never gets traffic, the rollout stops, 0 failed requests", async () => {
    fs.writeFileSync(path.join(appDir, "VERSION"), "1.2.0-broken\n");
    fs.writeFileSync(appPy, goodApp.replace('if path == "/healthz":', 'if path == "/healthz" and False:'));
    try {
      const probes = await underLoad(async () => {
        const r = await fleet(root, ["rollout"], { env, timeoutMs: 900_000 });
        assert.equal(r.code, 1, show(r));
        assert.match(r.stderr + r.stdout, /healthy/);
      });
      noneFailed(probes, "failing deploy");
      for (const p of probes) assert.deepEqual(p.versions, ["1.1.0"], "the broken version answered a request");
      for (const [environment, id] of CUSTOMERS) {
        assert.equal((await customerContainers(environment, id)).length, 1, `${environment}-${id}: the failed container is left`);
        assert.equal((await customerContainer(environment, id))!.State.Health?.Status, "healthy");
      }
    } finally {
      fs.writeFileSync(appPy, goodApp);
    }
  });
});
