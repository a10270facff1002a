/**
 * `fleet usage` on the real engines (target: docker), the CLI as separate processes. Two customers
 * behind their edge proxy; `fleet watch` samples them every 2 s (its probes once an hour, so the only
 * requests in the window are this test's). Over one window:
 *
 *  - us-a holds 120 MiB in a process of its container throughout and burns CPU for 20 s in the middle
 *    (idle margins longer than the sample period before and after): its CPU-seconds are within 10% of
 *    the engine's own cpu_usage.total_usage difference from the window's start to its end, its memory
 *    peak within 10% of the engine's memory readings meanwhile; the idle us-b shows near-zero CPU;
 *  - requests and bytes through the edge are those this test sent (us-b: none);
 *  - the data volume's size, the Stripe customer bound; --csv and --json parse and agree;
 *  - without samples (no watcher yet, or a window the watcher did not see) it says the watcher must run.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { WatchStore } from "../../src/watch/store";
import { fleet, killLeftovers, show, startFleet, type LongRun } from "../support/cli";
import { customerContainer, engine, removeCustomers } from "../support/engine";
import { edgeCaForPort } from "../support/http";
import { copyProject, customerUrlIn, editEnvironment, useEdge } from "../support/projectCopy";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ENV = "staging";
const EDGE = "edge-us";
const IDS = ["us-a", "us-b"];
const SAMPLE = 2;
const MARGIN_MS = 2.5 * SAMPLE * 1000;
const BURN_SECONDS = 20;
const HOLD_MIB = 120;
const PYTHON = "/opt/venv/bin/python";

interface EngineReading { at: number; cpuNanos: number; memoryBytes: number }

/** The engine's own stats of a container, measured as the watcher measures memory (usage without inactive file). */
async function reading(id: string): Promise<EngineReading> {
  const s = await engine.getContainer(id).stats({ stream: false, "one-shot": true } as { stream: false }) as unknown as {
    cpu_stats: { cpu_usage: { total_usage: number } }; memory_stats: { usage: number; stats: { inactive_file?: number; total_inactive_file?: number } } };
  const inactive = s.memory_stats.stats.inactive_file ?? s.memory_stats.stats.total_inactive_file ?? 0;
  return { at: Date.now(), cpuNanos: s.cpu_stats.cpu_usage.total_usage, memoryBytes: s.memory_stats.usage - inactive };
}

/** A request through the edge proxy (loopback, the proxy's CA): its status and the body bytes received. */
async function send(url: string, method = "GET", body?: Buffer): Promise<{ status: number; bytes: number }> {
  const u = new URL(url);
  assert.ok(u.hostname.endsWith(".localhost"));
  const ca = await edgeCaForPort(Number(u.port));
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port: Number(u.port), method, path: `${u.pathname}${u.search}`, servername: u.hostname, ca, agent: false,
      headers: { host: u.host, ...(body ? { "content-length": body.length } : {}) }, timeout: 10_000 }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => { bytes += c.length; });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

type Row = Record<string, string | number | null>;

/** RFC 4180 lines without quoted fields (none of these values needs quoting). */
function parseCsv(text: string): Row[] {
  assert.ok(text.endsWith("\r\n"), "CRLF line ends");
  const [head, ...lines] = text.slice(0, -2).split("\r\n");
  const names = head!.split(",");
  return lines.map((l) => {
    const cells = l.split(",");
    assert.equal(cells.length, names.length, l);
    return Object.fromEntries(names.map((n, i) => [n, cells[i]!]));
  });
}

const within = (actual: number, expected: number, share: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= share * expected, `${what}: ${actual} is not within ${share * 100}% of ${expected}`);

describe("fleet usage on the real engines (target: docker)", { timeout: 10 * 60_000 }, () => {
  const ctx = copyProject();
  const root = ctx.root;
  let watcher: LongRun | undefined;
  const ok = async (args: string[]) => {
    const r = await fleet(root, args);
    assert.equal(r.code, 0, show(r));
    return r;
  };
  const idOf = async (customer: string) => {
    const c = await customerContainer(ENV, customer);
    assert.ok(c?.State.Running, `no running container for ${customer}`);
    return c.Id;
  };
  const storeFile = path.join(root, ".fleet", "watch", "watch.db");
  /** the window measured, and what the test saw and sent in it */
  const w = { from: "", to: "", engineCpu: new Map<string, number>(), peakMemory: 0, requests: 0, bytesIn: 0, bytesOut: 0 };

  before(async () => {
    await removeCustomers(IDS.map((id): [string, string] => [ENV, id]), [[ENV, EDGE]]);
    useEdge(root, ENV, EDGE, 19900, 19901);
    editEnvironment(root, ENV, (e) => {
      e.deploy.healthTimeoutSeconds = 60;
      // one probe round at the start: the window's requests are this test's alone
      e.watch = { intervalSeconds: 3600, timeoutSeconds: 5, usageSampleSeconds: SAMPLE };
    });
    await ok(["up", ENV]);
    // us-a on a plan with room for the allocation and the burn (256 MiB, half a core)
    await ok(["provision", "us-a", "--env", ENV, "--plan", "standard"]);
    await ok(["provision", "us-b", "--env", ENV]);
    await ok(["bind", "us-a", "--env", ENV, "--stripe-customer", "cus_UsageTest42"]);
  });

  after(async () => {
    if (watcher) { process.kill(-watcher.child.pid!, "SIGKILL"); await watcher.exited; }
    killLeftovers();
    await removeCustomers(IDS.map((id): [string, string] => [ENV, id]), [[ENV, EDGE]]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("without samples it says so and that the watcher must run, printing no figures", async () => {
    const r = await fleet(root, ["usage", "--env", ENV]);
    assert.equal(r.code, 1, show(r));
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /no usage samples of staging: there is no watcher store .*run 'fleet watch --env staging' \(it samples every 2s\)/);
  });

  it("us-a burns CPU for 20 s while holding 120 MiB: CPU-seconds and memory peak within 10% of the engine's own; us-b near zero; the traffic sent", async (t) => {
    watcher = startFleet(root, ["watch", "--env", ENV, "--listen", "127.0.0.1:0"]);
    await watcher.waitFor(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/);
    const a = await idOf("us-a");
    const b = await idOf("us-b");
    const base = (await reading(a)).memoryBytes;
    // the allocation (bytes * n writes every page), held until its stdin is closed after the window
    const holder = spawn("docker", ["exec", "-i", a, PYTHON, "-c", `import sys\nb = b"\\x01" * (${HOLD_MIB} << 20)\nsys.stdin.read()`],
      { stdio: ["pipe", "ignore", "inherit"] });
    const released = new Promise((resolve) => holder.once("exit", resolve));
    for (const deadline = Date.now() + 30_000; (await reading(a)).memoryBytes < base + (HOLD_MIB - 5) * 2 ** 20;) {
      assert.ok(Date.now() < deadline, "the allocation never showed in the engine's memory reading");
      await sleep(100);
    }
    // the watcher samples both customers before the window starts
    for (let i = 0; ; i++) {
      const store = fs.existsSync(storeFile) ? WatchStore.open(storeFile, { readOnly: true }) : undefined;
      const got = store?.samplesFor(ENV, new Date(Date.now() - 10_000), new Date(Date.now() + 1000));
      store?.close();
      if (got?.get("us-a")?.length && got.get("us-b")?.length) break;
      assert.ok(i < 60, `no samples yet:\n${watcher.stderr().slice(-3000)}`);
      await sleep(500);
    }

    const [a0, b0] = await Promise.all([reading(a), reading(b)]);
    w.from = new Date(Math.min(a0.at, b0.at) - 50).toISOString();
    let watching = true;
    const memory = (async () => {
      while (watching) {
        w.peakMemory = Math.max(w.peakMemory, (await reading(a)).memoryBytes);
        await sleep(500);
      }
    })();
    await sleep(MARGIN_MS);
    const burnStart = Date.now();
    await run("docker", ["exec", a, PYTHON, "-c", `import time\nend = time.time() + ${BURN_SECONDS}\nwhile time.time() < end: pass`]);
    assert.ok(Date.now() - burnStart >= BURN_SECONDS * 1000);
    // traffic in the idle margin after the burn
    const base_ = customerUrlIn(root, ENV, "us-a");
    const sent = [
      await send(`${base_}/healthz`), await send(`${base_}/`), await send(`${base_}/healthz?n=2`),
      await send(`${base_}/uploads?name=u1`, "POST", Buffer.alloc(3000, 1)), await send(`${base_}/uploads?name=u2`, "POST", Buffer.alloc(5000, 2)),
      await send(`${base_}/no-such-page`),
    ];
    assert.deepEqual(sent.map((s) => s.status), [200, 200, 200, 201, 201, 404]);
    w.requests = sent.length;
    w.bytesIn = 8000;
    w.bytesOut = sent.reduce((n, s) => n + s.bytes, 0);
    await sleep(MARGIN_MS);
    const [a1, b1] = await Promise.all([reading(a), reading(b)]);
    w.to = new Date(Math.max(a1.at, b1.at)).toISOString();
    watching = false;
    await memory;
    w.engineCpu.set("us-a", (a1.cpuNanos - a0.cpuNanos) / 1e9);
    w.engineCpu.set("us-b", (b1.cpuNanos - b0.cpuNanos) / 1e9);
    // the round after the window (where its last samples stop holding)
    await sleep(SAMPLE * 1000 + 500);

    const r = await ok(["usage", "--env", ENV, "--since", w.from, "--until", w.to, "--json"]);
    const rows = JSON.parse(r.stdout) as Row[];
    assert.deepEqual(rows.map((x) => x.customer), ["us-a", "us-b"]);
    const [ua, ub] = rows as [Row, Row];
    const engineA = w.engineCpu.get("us-a")!;
    t.diagnostic(`window ${w.from} to ${w.to}; us-a cpu ${ua.cpuSeconds} s (engine ${engineA.toFixed(3)}), memory peak ${ua.memoryPeakBytes} ` +
      `(engine's highest reading ${w.peakMemory}), average ${ua.memoryAverageBytes}; us-b cpu ${ub.cpuSeconds} s (engine ${w.engineCpu.get("us-b")!.toFixed(3)}); ` +
      `samples ${ua.samples}/${ub.samples}, coverage ${ua.coverageSeconds}/${ub.coverageSeconds} s; traffic ${ua.requests} requests, ${ua.bytesIn} B in, ${ua.bytesOut} B out; volume ${ua.dataVolumeBytes} B`);
    // the plan's half core for 20 s, at least half of it on a busy host: the burn happened
    assert.ok(engineA >= 0.5 * 0.5 * BURN_SECONDS, `the engine counted ${engineA} CPU-seconds for the burn`);
    within(ua.cpuSeconds as number, engineA, 0.1, "us-a's CPU-seconds against the engine's");
    within(ua.memoryPeakBytes as number, w.peakMemory, 0.1, "us-a's memory peak against the engine's readings");
    assert.ok((ua.memoryPeakBytes as number) >= HOLD_MIB * 2 ** 20, "the peak includes the allocation");
    assert.ok((ua.memoryAverageBytes as number) <= (ua.memoryPeakBytes as number));
    // idle: its gunicorn and the engine's healthchecks (a python process every few seconds) only
    const engineB = w.engineCpu.get("us-b")!;
    assert.ok((ub.cpuSeconds as number) < 0.15 * (ua.cpuSeconds as number), `idle us-b used ${ub.cpuSeconds} CPU-seconds, us-a ${ua.cpuSeconds}`);
    assert.ok(Math.abs((ub.cpuSeconds as number) - engineB) <= Math.max(0.1 * engineB, 0.3), `us-b: ${ub.cpuSeconds} against the engine's ${engineB}`);
    const windowSeconds = (Date.parse(w.to) - Date.parse(w.from)) / 1000;
    for (const row of rows) assert.ok((row.coverageSeconds as number) >= 0.9 * windowSeconds, `${row.customer} covered ${row.coverageSeconds} of ${windowSeconds} s`);
    assert.equal(ua.memoryLimitBytes, 256 * 2 ** 20);
    assert.equal(ua.cpuLimitCores, 0.5);
    within(ua.cpuShareOfPlan as number, (ua.cpuSeconds as number) / (0.5 * windowSeconds), 0.01, "the share of the plan's CPU");
    // traffic: exactly what was sent; none for us-b
    assert.deepEqual([ua.requests, ua.bytesIn, ua.bytesOut, ua.status5xx], [w.requests, w.bytesIn, w.bytesOut, 0]);
    assert.deepEqual([ub.requests, ub.bytesIn, ub.bytesOut], [0, 0, 0]);
    // the volume holds the uploads; the Stripe customer bound to us-a, none for us-b
    assert.ok(typeof ua.dataVolumeBytes === "number" && ua.dataVolumeBytes >= 8000, `us-a's volume: ${ua.dataVolumeBytes}`);
    assert.equal(typeof ub.dataVolumeBytes, "number");
    assert.equal(ua.stripeCustomer, "cus_UsageTest42");
    assert.equal(ub.stripeCustomer, "");
    holder.stdin!.end();
    await released;
  });

  it("--csv gives the same rows as --json; the table names every customer", async () => {
    const json = JSON.parse((await ok(["usage", "--env", ENV, "--since", w.from, "--until", w.to, "--json"])).stdout) as Row[];
    const csv = parseCsv((await ok(["usage", "--env", ENV, "--since", w.from, "--until", w.to, "--csv"])).stdout);
    assert.equal(csv.length, json.length);
    for (const [i, row] of json.entries()) {
      for (const [k, v] of Object.entries(row)) {
        // the volume's size is measured at each call (as of now)
        if (k === "dataVolumeBytes") continue;
        const cell = csv[i]![k]!;
        if (typeof v === "number") assert.equal(Number(cell), v, `${row.customer} ${k}: ${cell}`);
        else assert.equal(cell, v ?? "", `${row.customer} ${k}`);
      }
    }
    const table = await ok(["usage", "--env", ENV, "--since", w.from, "--until", w.to]);
    assert.match(table.stdout, /^customer\s+plan\s+stripe\s+cpu/m);
    assert.match(table.stdout, /^us-a\s+standard\s+cus_UsageTest42\s+\d+\.\d s \(\d+\.\d%\)/m);
    assert.match(table.stdout, /^us-b\s+starter\s+-\s+\d+\.\d s/m);
    // the default window (the last 24 h) has samples too
    assert.equal(JSON.parse((await ok(["usage", "--env", ENV, "--json"])).stdout).length, 2);
  });

  it("a window the watcher did not see is refused with the span it has; bad options name themselves", async () => {
    const r = await fleet(root, ["usage", "--env", ENV, "--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z"]);
    assert.equal(r.code, 1, show(r));
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /no usage samples of staging from 2026-01-01T00:00:00\.000Z to 2026-01-02T00:00:00\.000Z \(its samples go from .*\): the watcher takes them: run 'fleet watch --env staging'/);
    for (const [args, pattern] of [
      [["--since", "yesterday"], /--since/], [["--until", "later"], /--until/], [["--since", "1h", "--until", "2h"], /--since.*before --until/],
      [["--json", "--csv"], /--csv/],
    ] as [string[], RegExp][]) {
      const bad = await fleet(root, ["usage", "--env", ENV, ...args]);
      assert.equal(bad.code, 1, show(bad));
      assert.match(bad.stderr, pattern);
    }
  });
});
