/** The log collector's pure parts: its container, the customers' driver, retention, the lines and how they are read. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/config/errors";
import { parseEnvironmentConfig } from "../../src/config/load";
import { serviceSpec } from "../../src/hardening/serviceSpec";
import { logCollectorSpec } from "../../src/logs/collector";
import { customerLog } from "../../src/logs/driver";
import {
  formatLine, parseAccessLogLine, parseCollectorLine, parseGrep, parseSince, parseTail, selectLines, type LogLine,
} from "../../src/logs/lines";
import { parsePoll, parseRead, pollCommand, readCommand } from "../../src/logs/reading";
import { accessLogRoll, rotation } from "../../src/logs/retention";
import { rawEnvironment } from "../support/fixtures";

const env = parseEnvironmentConfig(rawEnvironment("staging"));
const line = (time: string, message: string, source = "aaaaaaaaaaaa"): LogLine => ({ time, source, stream: "out", message });

describe("the log collector's container", () => {
  it("is hardened like every container fleet makes: 1000, nothing added, read-only, limits, a healthcheck, its own network, no port", () => {
    const s = logCollectorSpec(env, "img");
    assert.equal(s.containerName, "hf-staging-edge-logs");
    assert.equal(s.networkName, "hf-staging-edge-logs-lognet");
    assert.equal(s.user, "1000:1000");
    assert.deepEqual([s.capDrop, s.capAdd], [["ALL"], []]);
    assert.deepEqual(s.securityOpt, ["no-new-privileges:true"]);
    assert.equal(s.readOnlyRootfs, true);
    assert.ok(s.memoryBytes > 0 && s.cpus > 0 && s.pidsLimit > 0);
    assert.deepEqual(s.healthcheck.test, ["CMD", "/usr/local/bin/logs-healthcheck"]);
    assert.deepEqual(s.publish, []);
    assert.deepEqual(s.data, { volume: "hf-staging-edge-logs-store", target: "/logs" });
    // its own lines stay with the engine: it must not send them to itself
    assert.equal(s.log.driver, "json-file");
  });

  it("gives logrotate the bounds of logging.collector: (keep + 1) files of maxSizeKib make about perCustomerMb", () => {
    const s = logCollectorSpec(env, "img");
    assert.deepEqual(rotation(env), { maxSizeKib: Math.floor(20 * 1024 / 15), keep: 14, maxAgeDays: 14 });
    assert.deepEqual(s.env, { LOG_ROTATE_MAX_KIB: "1365", LOG_ROTATE_KEEP: "14", LOG_MAX_AGE_DAYS: "14" });
    const small = parseEnvironmentConfig({ ...rawEnvironment("staging"), logging: { collector: { perCustomerMb: 2, maxAgeDays: 1 } } });
    assert.deepEqual(rotation(small), { maxSizeKib: 1024, keep: 1, maxAgeDays: 1 });
    assert.deepEqual(accessLogRoll(small), { maxMb: 1, keep: 4, keepForHours: 24 });
    assert.deepEqual(accessLogRoll(env), { maxMb: 4, keep: 4, keepForHours: 336 });
  });

  it("refuses bounds it cannot keep, naming the key", () => {
    assert.throws(() => parseEnvironmentConfig({ ...rawEnvironment("staging"), logging: { collector: { perCustomerMb: 1 } } }),
      (e: unknown) => e instanceof ConfigError && /logging\.collector\.perCustomerMb/.test(e.message));
    assert.throws(() => parseEnvironmentConfig({ ...rawEnvironment("staging"), logging: { collector: { maxAgeDays: 0 } } }),
      (e: unknown) => e instanceof ConfigError && /logging\.collector\.maxAgeDays/.test(e.message));
  });
});

describe("a customer's log driver", () => {
  it("with a collector: syslog over UDP to its address, tagged <customer>.<container id>, and the engine's own bounded copy", () => {
    assert.deepEqual(customerLog(env, "acme", "udp://172.20.4.2:5514"), {
      driver: "syslog",
      opts: { "syslog-address": "udp://172.20.4.2:5514", "syslog-format": "rfc5424micro", tag: "acme.{{.ID}}", "cache-max-size": "10m", "cache-max-file": "3" },
    });
    assert.deepEqual(customerLog(env, "acme"), { driver: "json-file", opts: { "max-size": "10m", "max-file": "3" } });
  });

  it("is part of the spec: a customer moved onto the collector gets a new container (a new slot), started beside the old one", () => {
    const customer = { id: "acme", environment: "staging", plan: "starter" } as const;
    const plain = serviceSpec(env, customer as never, "img");
    const collected = serviceSpec(env, customer as never, "img", "udp://172.20.4.2:5514");
    assert.equal(collected.log.driver, "syslog");
    assert.notEqual(collected.containerName, plain.containerName);
  });
});

describe("log lines", () => {
  it("parses the collector's JSON lines and nothing else", () => {
    assert.deepEqual(parseCollectorLine('{"t":"2026-12-06T14:00:00.123456Z","c":"0123456789ab","s":"err","m":"boom \\"x\\""}'),
      { time: "2026-12-06T14:00:00.123456Z", source: "0123456789ab", stream: "err", message: 'boom "x"' });
    assert.equal(parseCollectorLine('{"t":"2026-12-06T14:00:00Z","c":"0123456789ab","s":"info","m":"ok"}')?.stream, "out");
    for (const bad of ["", "{", '{"t":"yesterday","c":"x","m":"y"}', '{"t":"2026-12-06T14:00:00Z","m":"no source"}', "[]", "null"]) {
      assert.equal(parseCollectorLine(bad), undefined, bad);
    }
  });

  it("shows an access log line as method, path, status, size, duration and client", () => {
    const l = parseAccessLogLine(JSON.stringify({ ts: 1796565600.5, status: 404, size: 12, duration: 0.0031,
      request: { method: "GET", uri: "/missing?a=1", remote_ip: "127.0.0.1" } }));
    assert.deepEqual(l, { time: "2026-12-06T14:00:00.500Z", source: "edge", stream: "out", message: "GET /missing?a=1 404 12 B 3 ms from 127.0.0.1" });
    assert.equal(parseAccessLogLine(JSON.stringify({ ts: 1, status: 502, request: { method: "GET", uri: "/" } }))?.stream, "err");
    assert.equal(parseAccessLogLine('{"level":"info","msg":"not a request"}'), undefined);
  });

  it("sorts by time (stably), then filters by --since and --grep, then keeps the --tail", () => {
    const lines = [line("2026-12-06T14:00:02Z", "b"), line("2026-12-06T14:00:01Z", "a"), line("2026-12-06T14:00:02Z", "c"), line("2026-12-06T14:00:03Z", "d")];
    assert.deepEqual(selectLines(lines, {}).map((l) => l.message), ["a", "b", "c", "d"]);
    assert.deepEqual(selectLines(lines, { since: Date.parse("2026-12-06T14:00:02Z") }).map((l) => l.message), ["b", "c", "d"]);
    assert.deepEqual(selectLines(lines, { grep: /^[bd]$/ }).map((l) => l.message), ["b", "d"]);
    assert.deepEqual(selectLines(lines, { tail: 2 }).map((l) => l.message), ["c", "d"]);
    assert.equal(formatLine(line("2026-12-06T14:00:01.000001Z", "hello", "0123456789ab")), "2026-12-06T14:00:01.000001Z 0123456789ab out hello");
  });

  it("reads --since as a duration back or a time, and refuses anything else naming the option", () => {
    const now = Date.parse("2026-12-06T14:00:00Z");
    assert.equal(parseSince("90s", now), now - 90_000);
    assert.equal(parseSince("2h", now), now - 7_200_000);
    assert.equal(parseSince("7d", now), now - 7 * 86_400_000);
    assert.equal(parseSince("2026-12-06T10:00:00Z", now), Date.parse("2026-12-06T10:00:00Z"));
    for (const bad of ["yesterday", "10", "5w", "-1h", ""]) assert.throws(() => parseSince(bad, now), /--since/, bad);
    assert.throws(() => parseTail("0"), /--tail/);
    assert.throws(() => parseTail("2.5"), /--tail/);
    assert.equal(parseTail("20"), 20);
    assert.throws(() => parseGrep("(open"), /--grep.*regular expression/);
  });
});

describe("reading a customer's files in the collector (the commands run by this machine's bash)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-logs-"));
  // the commands name /logs/<customer>/current.log; here the same scripts run on a scratch copy of that layout
  const run = (argv: string[]) => {
    const [, , script, name, file, ...rest] = argv;
    return execFileSync("bash", ["-c", script!, name!, file!.replace(/^\/logs/, dir), ...rest]);
  };
  const file = path.join(dir, "acme", "current.log");
  const json = (m: string) => `{"t":"2026-12-06T14:00:00Z","c":"0123456789ab","s":"info","m":"${m}"}\n`;

  it("reads nothing when the customer has no file yet, and then follows from the start of the first one", () => {
    const first = parseRead(run(readCommand("acme")));
    assert.deepEqual(first, { lines: [], position: { inode: 0, offset: 0 } });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, json("one"));
    const seen = parsePoll(run(pollCommand("acme", first.position)), first.position);
    assert.deepEqual(seen.lines, []);
    assert.ok(seen.position.inode > 0 && seen.position.offset === 0);
    const next = parsePoll(run(pollCommand("acme", seen.position)), seen.position);
    assert.deepEqual(next.lines.map((l) => parseCollectorLine(l)?.message), ["one"]);
  });

  it("reads the rotated files oldest first, then the current one; a torn last line waits for the next poll", () => {
    fs.writeFileSync(`${file}.2`, json("oldest"));
    fs.writeFileSync(`${file}.1`, json("older"));
    fs.writeFileSync(file, json("now") + '{"t":"2026-12-06T14:00:01Z","c":"01234');
    const read = parseRead(run(readCommand("acme")));
    assert.deepEqual(read.lines.map((l) => parseCollectorLine(l)?.message), ["oldest", "older", "now"]);
    assert.equal(read.position.offset, Buffer.byteLength(json("now")));
    fs.appendFileSync(file, '56789ab","s":"info","m":"then"}\n');
    const polled = parsePoll(run(pollCommand("acme", read.position)), read.position);
    assert.deepEqual(polled.lines.map((l) => parseCollectorLine(l)?.message), ["then"]);
    assert.equal(polled.position.offset, fs.statSync(file).size);
  });

  it("after a rotation: the rest of the old file (now current.log.1), then the new file from its start", () => {
    const at = { inode: fs.statSync(file).ino, offset: fs.statSync(file).size };
    fs.appendFileSync(file, json("last of the old file"));
    fs.renameSync(`${file}.1`, `${file}.2`);
    fs.renameSync(file, `${file}.1`);
    fs.writeFileSync(file, json("first of the new file"));
    const rest = parsePoll(run(pollCommand("acme", at)), at);
    assert.deepEqual(rest.lines.map((l) => parseCollectorLine(l)?.message), ["last of the old file"]);
    assert.deepEqual(rest.position, { inode: fs.statSync(file).ino, offset: 0 });
    const fresh = parsePoll(run(pollCommand("acme", rest.position)), rest.position);
    assert.deepEqual(fresh.lines.map((l) => parseCollectorLine(l)?.message), ["first of the new file"]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
