/**
 * The watcher's usage samples in its store (src/watch/store.ts): what a window reads back (the samples
 * around it that the rules of src/usage/usage.ts need), retention, the migration of a version 1 file,
 * and the window of `fleet usage`.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { usageWindow } from "../../src/cli/usage";
import { ConfigError } from "../../src/config/errors";
import { watchSchema } from "../../src/config/schema";
import { maxHoldSeconds } from "../../src/fleet/usage";
import { summarizeUsage } from "../../src/usage/usage";
import { usageGraphs } from "../../src/statusPage/usage";
import { WatchStore } from "../../src/watch/store";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-usage-store-"));
let n = 0;
const freshFile = () => path.join(dir, `watch-${n++}.db`);
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const T0 = Date.parse("2026-12-06T10:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000);
const GIB = 1024 ** 3;

/** Rounds every 10 s from -30 s to +90 s: a's container c1 burns 1 core-second per second; b idles in c2. */
function filled(): WatchStore {
  const store = WatchStore.open(freshFile());
  for (let s = -30; s <= 90; s += 10) {
    store.saveSamples("staging", at(s), [
      { customer: "a", container: "c1", cpuNanos: (s + 30) * 1e9, memoryBytes: 100 + s },
      { customer: "b", container: "c2", cpuNanos: 5e6, memoryBytes: 50 },
    ]);
  }
  store.saveSamples("prod", at(0), [{ customer: "a", container: "p1", cpuNanos: 9e9, memoryBytes: GIB }]);
  return store;
}

describe("usage samples in the watcher's store", () => {
  it("a window reads its samples, each container's previous one, and the rounds just before and after", () => {
    const store = filled();
    const got = store.samplesFor("staging", at(15), at(45));
    assert.deepEqual([...got.keys()].sort(), ["a", "b"]);
    // 10 s (previous of c1 and the last round before), 20, 30, 40 (inside), 50 (next round)
    assert.deepEqual(got.get("a")!.map((s) => s.at), [10, 20, 30, 40, 50].map((s) => at(s).toISOString()));
    const a = summarizeUsage(got.get("a")!, { from: at(15).toISOString(), to: at(45).toISOString() }, { memoryMb: 1, cpus: 1 });
    // the increases counted at 20, 30 and 40 (from 10)
    assert.equal(a.cpuSeconds, 30);
    assert.equal(a.samples, 3);
    assert.equal(a.coverageSeconds, 30);
    assert.equal(a.memoryPeakBytes, 140);
    // other environments' samples stay out
    assert.ok(got.get("a")!.every((s) => s.container === "c1"));
    store.close();
  });

  it("consecutive windows add up to the whole", () => {
    const store = filled();
    const cpu = (from: number, to: number) =>
      summarizeUsage(store.samplesFor("staging", at(from), at(to)).get("a") ?? [], { from: at(from).toISOString(), to: at(to).toISOString() }, { memoryMb: 1, cpus: 1 }).cpuSeconds;
    assert.equal(cpu(-5, 25) + cpu(25, 61) + cpu(61, 95), cpu(-5, 95));
    assert.equal(cpu(-5, 95), 100);
    store.close();
  });

  it("a customer named but without samples in the window gets the rounds around it; one never sampled gets none", () => {
    const store = WatchStore.open(freshFile());
    store.saveSamples("staging", at(0), [{ customer: "a", container: "c1", cpuNanos: 1, memoryBytes: 10 }]);
    store.saveSamples("staging", at(100), [{ customer: "a", container: "c1", cpuNanos: 2, memoryBytes: 10 }]);
    const got = store.samplesFor("staging", at(40), at(60), ["a", "nobody"]);
    assert.deepEqual(got.get("a")!.map((s) => s.at), [at(0).toISOString(), at(100).toISOString()]);
    assert.equal(got.has("nobody"), false);
    assert.equal(store.sampleCount("staging", at(40), at(60)), 0);
    assert.deepEqual(store.sampleSpan("staging"), { first: at(0).toISOString(), last: at(100).toISOString() });
    assert.equal(store.sampleSpan("prod"), undefined);
    store.close();
  });

  it("retention removes an environment's samples before a time, and only its own", () => {
    const store = filled();
    assert.equal(store.pruneSamples("staging", at(0)), 6);
    assert.equal(store.sampleSpan("staging")!.first, at(0).toISOString());
    assert.equal(store.sampleSpan("prod")!.first, at(0).toISOString());
    assert.equal(store.pruneSamples("staging", at(0)), 0);
    store.close();
  });

  it("a round with no samples writes nothing; values are stored as whole non-negative numbers", () => {
    const store = WatchStore.open(freshFile());
    store.saveSamples("staging", at(0), []);
    assert.equal(store.sampleSpan("staging"), undefined);
    store.saveSamples("staging", at(0), [{ customer: "a", container: "c1", cpuNanos: 1.6, memoryBytes: -3 }]);
    assert.deepEqual(store.samplesFor("staging", at(0), at(1)).get("a"), [{ at: at(0).toISOString(), container: "c1", cpuNanos: 2, memoryBytes: 0 }]);
    store.close();
  });

  it("a store of version 1 (no samples) is read as it is, and migrated when the watcher opens it; its states are kept", () => {
    const file = freshFile();
    WatchStore.open(file).saveRound("staging", at(0));
    const db = new DatabaseSync(file);
    db.exec("DROP TABLE samples; PRAGMA user_version = 1;");
    db.close();
    // read before the watcher migrates it (fleet status, fleet list, fleet usage): as it is, without samples
    const reader = WatchStore.open(file, { readOnly: true });
    assert.equal(reader.lastRound("staging"), at(0).toISOString());
    assert.equal(reader.sampleCount("staging", at(0), at(2)), 0);
    assert.deepEqual(reader.samplesFor("staging", at(0), at(2), ["a"]), new Map());
    reader.close();
    const store = WatchStore.open(file);
    assert.equal(store.lastRound("staging"), at(0).toISOString());
    store.saveSamples("staging", at(1), [{ customer: "a", container: "c1", cpuNanos: 1, memoryBytes: 1 }]);
    assert.equal(store.sampleCount("staging", at(0), at(2)), 1);
    store.close();
  });
});

describe("fleet usage: the window and the settings", () => {
  const now = T0;
  it("--since and --until: durations back from now or times; the default end is now", () => {
    assert.deepEqual(usageWindow({ since: "24h" }, now), { from: new Date(now - 86_400_000), to: new Date(now) });
    assert.deepEqual(usageWindow({ since: "2026-12-01T00:00:00Z", until: "2026-12-02T00:00:00Z" }, now),
      { from: new Date("2026-12-01T00:00:00Z"), to: new Date("2026-12-02T00:00:00Z") });
    assert.deepEqual(usageWindow({ since: "2h", until: "1h" }, now), { from: new Date(now - 7_200_000), to: new Date(now - 3_600_000) });
  });

  it("a bad or empty window is refused naming the option", () => {
    const refused = (opts: { since: string; until?: string }, option: string) =>
      assert.throws(() => usageWindow(opts, now), (e: unknown) => e instanceof ConfigError && e.problems[0]!.path === option);
    refused({ since: "yesterday" }, "--since");
    refused({ since: "1h", until: "soon" }, "--until");
    refused({ since: "1h", until: "2h" }, "--since");
    refused({ since: "2026-12-06T10:00:00Z", until: "2026-12-06T10:00:00Z" }, "--since");
  });

  it("watch.usageSampleSeconds: 60 by default, at least 2; a sample holds at most twice it and 10 s", () => {
    const watch = watchSchema;
    assert.equal(watch.parse({}).usageSampleSeconds, 60);
    assert.equal(watch.parse({}).usageRetentionDays, 45);
    assert.equal(watch.parse({ usageSampleSeconds: 2 }).usageSampleSeconds, 2);
    assert.equal(watch.safeParse({ usageSampleSeconds: 1 }).success, false);
    assert.equal(watch.safeParse({ usageRetentionDays: 0 }).success, false);
    assert.equal(maxHoldSeconds(60), 130);
  });
});

describe("the status page's usage graphs", () => {
  it("CPU as % of the plan and memory in MiB per step of the last hour; steps without samples left out", () => {
    // c1 at half a core from 30 min ago on, 64 MiB; rounds every 60 s
    const now = at(3600);
    const samples = [];
    for (let s = 1800; s <= 3600; s += 60) samples.push({ at: at(s).toISOString(), container: "c1", cpuNanos: (s - 1800) * 0.5e9, memoryBytes: 64 * 2 ** 20 });
    const [cpu, memory] = usageGraphs(samples, { memoryMb: 256, cpus: 0.5 }, now, { steps: 6, maxHoldSeconds: 130 });
    assert.equal(cpu!.unit, "%");
    assert.equal(memory!.unit, "MiB");
    // the first three steps (60 to 30 min ago) have no sample
    assert.equal(cpu!.values.length, 3);
    // the first sample has nothing before it: its step counts 9 of its 10 minutes' CPU
    assert.deepEqual(cpu!.values.map((v) => Math.round(v * 1000) / 1000), [90, 100, 100]);
    assert.deepEqual(memory!.values, [64, 64, 64]);
  });
});
