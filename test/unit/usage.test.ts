/**
 * `fleet usage`'s pure parts: CPU and memory of a customer over a window from engine stats samples
 * (counter resets, a start-first replacement's two containers summed, the window's edges, a window no
 * sample covers), the CSV and JSON formats, and the edge's traffic from Caddy's JSON access log.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { aggregateByHost, hostWithoutPort, parseAccessLine } from "../../src/usage/accessLog";
import { formatUsageCsv, formatUsageJson, summarizeUsage, usageJson, usageRows, type StatsSample, type UsageRow } from "../../src/usage/usage";

const T0 = Date.parse("2026-03-01T00:00:00.000Z");
/** ISO time `s` seconds after T0 */
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const win = (from: number, to: number) => ({ from: at(from), to: at(to) });
const MIB = 1024 * 1024;
const GB = 1e9;
const sample = (s: number, container: string, cpuSeconds: number, memoryMib: number): StatsSample =>
  ({ at: at(s), container, cpuNanos: cpuSeconds * GB, memoryBytes: memoryMib * MIB });
const plan = { memoryMb: 512, cpus: 0.5 };

function assertAllFinite(o: object): void {
  for (const [k, v] of Object.entries(o)) if (typeof v === "number") assert.ok(Number.isFinite(v), `${k} is ${v}`);
}

describe("CPU seconds", () => {
  it("counts a counter that goes down as a reset from 0", () => {
    // 10 → 20 (+10), restart: 5 (+5 from 0), 8 (+3)
    const u = summarizeUsage([sample(0, "c1", 10, 64), sample(10, "c1", 20, 64), sample(20, "c1", 5, 64), sample(30, "c1", 8, 64)], win(0, 40), plan);
    assert.equal(u.cpuSeconds, 18);
    assert.equal(u.cpuShareOfPlan, 18 / (0.5 * 40));
  });

  it("counts the first sample in the window from the container's sample before it, and leaves out samples after it", () => {
    const samples = [sample(-10, "c1", 100, 64), sample(10, "c1", 130, 64), sample(20, "c1", 140, 64), sample(70, "c1", 200, 64)];
    assert.equal(summarizeUsage(samples, win(0, 60), plan).cpuSeconds, 40);
    // consecutive windows add up to the one they make
    const a = summarizeUsage(samples, win(0, 60), plan).cpuSeconds;
    const b = summarizeUsage(samples, win(60, 120), plan).cpuSeconds;
    assert.equal(a + b, summarizeUsage(samples, win(0, 120), plan).cpuSeconds);
    assert.equal(b, 60);
    // a container first seen in the window counts from its own first value
    assert.equal(summarizeUsage(samples.slice(1), win(0, 60), plan).cpuSeconds, 10);
  });

  it("sorts samples given out of order", () => {
    const samples = [sample(20, "c1", 140, 64), sample(-10, "c1", 100, 64), sample(10, "c1", 130, 64)];
    assert.equal(summarizeUsage(samples, win(0, 60), plan).cpuSeconds, 40);
  });
});

describe("memory and a start-first replacement", () => {
  // old container a (100 MiB) sampled at 0..30, new b (200 MiB) from 20 on: both run over [20, 40)
  const samples = [
    sample(0, "a", 0, 100), sample(10, "a", 1, 100), sample(20, "a", 2, 100), sample(30, "a", 3, 100),
    sample(20, "b", 5, 200), sample(30, "b", 6, 200), sample(40, "b", 8, 200), sample(50, "b", 9, 200),
  ];

  it("sums the two containers while both run, for memory and for CPU", () => {
    const u = summarizeUsage(samples, win(0, 60), plan);
    assert.equal(u.memoryPeakBytes, 300 * MIB);
    // [0,20) 100, [20,40) 300, [40,50) 200; b's last sample holds for no time
    assert.equal(u.coverageSeconds, 50);
    assert.equal(u.memoryAverageBytes, ((100 * 20 + 300 * 20 + 200 * 10) / 50) * MIB);
    assert.equal(u.memoryPeakShareOfPlan, 300 / 512);
    assert.equal(u.memoryAverageShareOfPlan, 200 / 512);
    assert.equal(u.memoryLimitBytes, 512 * MIB);
    // a: 0 → 3, b: 5 → 9 (each from its own first value)
    assert.equal(u.cpuSeconds, 7);
    assert.equal(u.samples, 8);
  });

  it("is not the sum of both when they do not overlap (the old one gone before the new one's first sample)", () => {
    const u = summarizeUsage([sample(0, "a", 0, 100), sample(10, "a", 1, 100), sample(20, "b", 0, 200), sample(30, "b", 1, 200)], win(0, 60), plan);
    assert.equal(u.memoryPeakBytes, 200 * MIB);
    assert.equal(u.memoryAverageBytes, ((100 * 20 + 200 * 10) / 30) * MIB);
  });
});

describe("the window's edges", () => {
  const samples = [sample(-20, "c1", 0, 100), sample(-10, "c1", 1, 200), sample(10, "c1", 3, 400), sample(20, "c1", 4, 300), sample(70, "c1", 10, 900)];

  it("takes what holds into the window from before it, and cuts what holds past its end", () => {
    const u = summarizeUsage(samples, win(0, 60), plan);
    // [0,10) 200 (held from -10), [10,20) 400, [20,60) 300 (held until 70, cut at 60)
    assert.equal(u.coverageSeconds, 60);
    assert.equal(u.memoryAverageBytes, ((200 * 10 + 400 * 10 + 300 * 40) / 60) * MIB);
    assert.equal(u.memoryPeakBytes, 400 * MIB);
    assert.equal(u.samples, 2);
    assert.equal(u.cpuSeconds, 3);
    assert.equal(u.windowSeconds, 60);
  });

  it("counts a sample at `from` in the window and one at `to` in the next", () => {
    const s = [sample(0, "c1", 0, 100), sample(60, "c1", 6, 500)];
    const u = summarizeUsage(s, win(0, 60), plan);
    assert.equal(u.samples, 1);
    assert.equal(u.memoryPeakBytes, 100 * MIB);
    assert.equal(u.cpuSeconds, 0);
    assert.equal(summarizeUsage(s, win(60, 120), plan).cpuSeconds, 6);
  });

  it("reports a window no sample covers as 0, not NaN", () => {
    for (const s of [[], [sample(-100, "c1", 5, 100)], [sample(100, "c1", 5, 100), sample(110, "c1", 6, 100)]]) {
      const u = summarizeUsage(s, win(0, 60), plan);
      assert.equal(u.coverageSeconds, 0);
      assert.equal(u.samples, 0);
      assert.equal(u.cpuSeconds, 0);
      assert.equal(u.memoryAverageBytes, 0);
      assert.equal(u.memoryPeakBytes, 0);
      assertAllFinite(u);
    }
    // an empty window, and one the wrong way round
    assertAllFinite(summarizeUsage([sample(0, "c1", 1, 1)], win(10, 10), plan));
    assertAllFinite(summarizeUsage([sample(0, "c1", 1, 1)], win(10, 0), plan));
  });

  it("leaves a gap in the sampling uncovered with maxHoldSeconds", () => {
    const s = [sample(0, "c1", 0, 100), sample(10, "c1", 1, 100), sample(1000, "c1", 2, 300)];
    const held = summarizeUsage(s, win(0, 2000), plan);
    assert.equal(held.coverageSeconds, 1000);
    const capped = summarizeUsage(s, win(0, 2000), plan, { maxHoldSeconds: 30 });
    assert.equal(capped.coverageSeconds, 40);
    assert.equal(capped.memoryAverageBytes, 100 * MIB);
    // the last sample is seen at its instant even though it holds for no time
    assert.equal(capped.memoryPeakBytes, 300 * MIB);
  });
});

/** RFC 4180 reader for the round trip (quoted fields, doubled quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') quoted = false; else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") { row.push(field); field = ""; }
    else if (ch === "\r" && text[i + 1] === "\n") { row.push(field); rows.push(row); row = []; field = ""; i++; }
    else field += ch;
  }
  assert.equal(field + row.join(""), "", "the text ends with CRLF");
  return rows;
}

describe("rows and formats", () => {
  const window = win(0, 60);
  const traffic = new Map([["acme", { requests: 3, bytesIn: 10, bytesOut: 2000, status5xx: 1, bytesInEstimated: 0 }]]);
  const rows = usageRows("prod", window, [
    { customer: "zeta", plan: "small", limits: plan, samples: [] },
    { customer: "acme", plan: "standard", limits: { memoryMb: 1024, cpus: 1 }, stripeCustomer: "cus_NffrFeUfNV2Hib", dataVolumeBytes: 4096,
      samples: [sample(0, "c1", 0, 100), sample(30, "c1", 1.5, 100), sample(60, "c1", 3, 100)] },
  ], traffic);

  it("joins the binding, the traffic and the volume, one row per customer by id", () => {
    assert.deepEqual(rows.map((r) => r.customer), ["acme", "zeta"]);
    const [acme, zeta] = rows as [UsageRow, UsageRow];
    assert.equal(acme.stripeCustomer, "cus_NffrFeUfNV2Hib");
    assert.equal(acme.requests, 3);
    assert.equal(acme.bytesOut, 2000);
    assert.equal(acme.status5xx, 1);
    assert.equal(acme.dataVolumeBytes, 4096);
    assert.equal(acme.cpuSeconds, 1.5);
    assert.equal(acme.cpuShareOfPlan, 1.5 / 60);
    assert.equal(zeta.stripeCustomer, "");
    assert.equal(zeta.requests, 0);
    assert.equal(zeta.dataVolumeBytes, null);
    assert.equal(zeta.from, window.from);
  });

  it("writes CSV with a header, fixed decimals, no exponent, and an empty field for an unmeasured volume", () => {
    const csv = formatUsageCsv(rows);
    assert.ok(csv.endsWith("\r\n"));
    const [head, acme, zeta] = parseCsv(csv) as [string[], string[], string[]];
    const col = (r: string[], name: string) => r[head.indexOf(name)];
    assert.equal(head[0], "environment");
    assert.equal(col(acme, "cpuSeconds"), "1.500");
    assert.equal(col(acme, "cpuShareOfPlan"), "0.0250");
    assert.equal(col(acme, "memoryPeakBytes"), String(100 * MIB));
    assert.equal(col(acme, "stripeCustomer"), "cus_NffrFeUfNV2Hib");
    assert.equal(col(zeta, "dataVolumeBytes"), "");
    assert.equal(col(zeta, "stripeCustomer"), "");
    assert.equal(col(zeta, "from"), window.from);
    for (const r of [acme, zeta]) assert.equal(r.length, head.length);
    assert.doesNotMatch(csv, /NaN|Infinity|e[+-]\d/);
    // tiny figures stay plain
    const tiny = formatUsageCsv([{ ...rows[0]!, cpuSeconds: 1e-7, cpuShareOfPlan: -1e-9 }]);
    assert.equal(col(parseCsv(tiny)[1]!, "cpuSeconds"), "0.000");
    assert.equal(col(parseCsv(tiny)[1]!, "cpuShareOfPlan"), "0.0000");
  });

  it("quotes a field with a comma, a quote or a line break (RFC 4180)", () => {
    const odd = { ...rows[0]!, customer: "ac,me", stripeCustomer: 'cus_"x"', plan: "two\r\nlines" };
    const csv = formatUsageCsv([odd]);
    assert.match(csv, /,"ac,me",/);
    assert.match(csv, /,"cus_""x""",/);
    const [head, back] = parseCsv(csv) as [string[], string[]];
    assert.equal(back.length, head.length);
    assert.equal(back[head.indexOf("customer")], "ac,me");
    assert.equal(back[head.indexOf("stripeCustomer")], 'cus_"x"');
    assert.equal(back[head.indexOf("plan")], "two\r\nlines");
  });

  it("gives JSON with the same fields, rounded the same, null for an unmeasured volume", () => {
    const json = JSON.parse(formatUsageJson(rows)) as Record<string, unknown>[];
    assert.deepEqual(Object.keys(json[0]!), parseCsv(formatUsageCsv(rows))[0]);
    assert.equal(json[0]!.cpuSeconds, 1.5);
    assert.equal(json[1]!.dataVolumeBytes, null);
    assert.equal(usageJson([{ ...rows[0]!, cpuShareOfPlan: 1 / 3 }])[0]!.cpuShareOfPlan, 0.3333);
  });
});

describe("Caddy access log", () => {
  const line = (o: Record<string, unknown>) => JSON.stringify({
    level: "info", ts: T0 / 1000 + 5.25, logger: "http.log.access.log0", msg: "handled request",
    request: { remote_ip: "127.0.0.1", remote_port: "50000", proto: "HTTP/2.0", method: "GET", host: "acme.staging.localhost:8443", uri: "/", headers: {} },
    bytes_read: 0, user_id: "", duration: 0.0021, size: 100, status: 200, resp_headers: {}, ...o,
  });
  const req = (o: Record<string, unknown>) => ({ remote_ip: "127.0.0.1", method: "POST", uri: "/up", headers: {}, ...o });
  const customers: Record<string, string> = { "acme.staging.localhost": "acme", "beta.staging.localhost": "beta" };
  const lookup = (h: string) => customers[h];

  it("parses a line as Caddy writes it, the host without its port", () => {
    const r = parseAccessLine(line({}));
    assert.deepEqual(r, { ts: T0 / 1000 + 5.25, host: "acme.staging.localhost", method: "GET", uri: "/", status: 200, bytesRead: 0,
      contentLength: undefined, size: 100, duration: 0.0021 });
    assert.equal(hostWithoutPort("ACME.example.com.:443"), "acme.example.com");
    assert.equal(hostWithoutPort("[::1]:8443"), "[::1]");
    assert.equal(hostWithoutPort("::1"), "::1");
  });

  it("ignores malformed and foreign lines", () => {
    const bad = [
      "", "not json", '{"level":"info","ts":1', "[1,2]", "null",
      JSON.stringify({ level: "info", ts: T0 / 1000, logger: "tls", msg: "certificate obtained" }),
      line({ request: "GET /" }), line({ request: req({ host: 7 }) }), line({ status: "200" }), line({ size: -1 }),
      line({ ts: "2026-03-01T00:00:05Z" }), line({ bytes_read: "5" }),
    ];
    for (const l of bad) assert.equal(parseAccessLine(l), undefined, l);
    const totals = aggregateByHost([...bad, line({})], win(0, 60), lookup);
    assert.deepEqual(totals.get("acme"), { requests: 1, bytesIn: 0, bytesOut: 100, status5xx: 0, bytesInEstimated: 0 });
  });

  it("sums requests and bytes per customer within the window, counts 5xx, and leaves out unknown hosts", () => {
    const lines = [
      line({ bytes_read: 10, size: 100 }),
      line({ request: req({ host: "acme.staging.localhost" }), bytes_read: 20, size: 200, status: 502 }),
      line({ request: req({ host: "ACME.staging.localhost:8443" }), bytes_read: 5, size: 0, status: 0 }),
      line({ request: req({ host: "beta.staging.localhost:8443" }), bytes_read: 1, size: 7, status: 404 }),
      line({ request: req({ host: "beta.staging.localhost" }), bytes_read: 1, size: 7, status: 599 }),
      line({ request: req({ host: "127.0.0.1:8443" }), bytes_read: 1000, size: 1000 }),
      line({ ts: T0 / 1000 - 0.001, size: 1e6 }), line({ ts: T0 / 1000 + 60, size: 1e6 }), line({ ts: T0 / 1000, size: 1 }),
    ];
    const totals = aggregateByHost(lines, win(0, 60), lookup);
    assert.deepEqual(totals.get("acme"), { requests: 4, bytesIn: 35, bytesOut: 301, status5xx: 1, bytesInEstimated: 0 });
    assert.deepEqual(totals.get("beta"), { requests: 2, bytesIn: 2, bytesOut: 14, status5xx: 1, bytesInEstimated: 0 });
    assert.equal(totals.size, 2);
  });

  it("takes the Content-Length header for a log without bytes_read (Caddy before 2.7) and says so", () => {
    const noBytesRead = (o: Record<string, unknown>) => {
      const l = JSON.parse(line(o)) as Record<string, unknown>;
      delete l.bytes_read;
      return JSON.stringify(l);
    };
    const totals = aggregateByHost([
      noBytesRead({ request: req({ host: "acme.staging.localhost", headers: { "Content-Length": ["1234"] } }) }),
      noBytesRead({}), line({ bytes_read: 6 }),
    ], win(0, 60), lookup);
    assert.deepEqual(totals.get("acme"), { requests: 3, bytesIn: 1240, bytesOut: 300, status5xx: 0, bytesInEstimated: 2 });
  });
});
