/**
 * `fleet logs` and the environment's log collector on the real engines (target: docker), the CLI as
 * separate processes. Three customers behind their edge proxy; their lines go through the engine's
 * syslog driver into the collector (rsyslog), which keeps them per customer past their containers:
 *
 *  - the collector is hardened like every container fleet makes, and audit-clean;
 *  - a plan change replaces a customer's container: the old container's lines are still shown, with
 *    its id, beside the new one's; no other customer's line is among them;
 *  - an update that never gets healthy is rolled back: the failed container's lines are shown;
 *  - `-f` follows across a replacement; --since, --grep, --tail and --access do what they say;
 *  - a burst of 3000 lines arrives whole; logrotate bounds a customer's files and the rotated lines
 *    are still read; bad input is refused naming the option.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { logCollectorNames } from "../../src/hardening/names";
import { fleet, killLeftovers, show, startFleet } from "../support/cli";
import { customerContainer, engine, removeCustomers } from "../support/engine";
import { request } from "../support/http";
import { copyProject, customerUrlIn, editEnvironment, useEdge } from "../support/projectCopy";
import { execIn } from "../../src/engine/exec";

const ENV = "staging";
const EDGE = "edge-lg";
const IDS = ["lg-a", "lg-b", "lg-c"];
const COLLECTOR = logCollectorNames(ENV, EDGE).container;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Shown { time: string; source: string; stream: string; message: string }

function parseShown(stdout: string): Shown[] {
  return stdout.split("\n").filter((l) => l.length > 0).map((l) => {
    const m = /^(\S+) (\S+)\s+(out|err) (.*)$/.exec(l);
    assert.ok(m, `not a fleet logs line: ${JSON.stringify(l)}`);
    return { time: m[1]!, source: m[2]!, stream: m[3]!, message: m[4]! };
  });
}

describe("fleet logs and the log collector on the real engines (target: docker)", { timeout: 20 * 60_000 }, () => {
  const ctx = copyProject();
  const root = ctx.root;
  const ok = async (args: string[]) => {
    const r = await fleet(root, args);
    assert.equal(r.code, 0, show(r));
    return r;
  };
  const logs = async (id: string, ...more: string[]) => parseShown((await ok(["logs", id, "--env", ENV, ...more])).stdout);
  const containerOf = async (id: string) => {
    const c = await customerContainer(ENV, id);
    assert.ok(c, `no container for ${id}`);
    return c;
  };
  /** Lines written to the container's own output, as its app would: through PID 1's stdout. */
  const emit = async (id: string, code: string) => {
    const c = engine.getContainer((await containerOf(id)).Id);
    const r = await execIn(c, ["/opt/venv/bin/python", "-c", `import sys\nout = open("/proc/1/fd/1", "w")\n${code}\nout.flush()`]);
    assert.equal(r.exitCode, 0, r.output);
  };
  const waitForLines = async (id: string, pattern: RegExp, count: number, timeoutMs = 30_000): Promise<Shown[]> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const shown = (await logs(id)).filter((l) => pattern.test(l.message));
      if (shown.length >= count || Date.now() > deadline) return shown;
      await sleep(500);
    }
  };

  before(async () => {
    await removeCustomers(IDS.map((id): [string, string] => [ENV, id]), [[ENV, EDGE]]);
    useEdge(root, ENV, EDGE, 19800, 19801);
    editEnvironment(root, ENV, (e) => {
      e.deploy.healthTimeoutSeconds = 60;
      // small bounds, so one test can make the collector rotate
      e.logging = { collector: { perCustomerMb: 2, maxAgeDays: 1 } };
    });
    await ok(["up", ENV]);
    for (const id of IDS) await ok(["provision", id, "--env", ENV]);
  });

  after(async () => {
    await killLeftovers();
    await removeCustomers(IDS.map((id): [string, string] => [ENV, id]), [[ENV, EDGE]]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("the collector is hardened like every container fleet makes, publishes nothing, and the audit passes it", async () => {
    const info = await engine.getContainer(COLLECTOR).inspect();
    assert.equal(info.Config.User, "1000:1000");
    assert.deepEqual(info.HostConfig.CapDrop, ["ALL"]);
    assert.deepEqual(info.HostConfig.CapAdd ?? [], []);
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.ok(info.HostConfig.SecurityOpt?.includes("no-new-privileges:true"));
    assert.deepEqual(info.HostConfig.PortBindings ?? {}, {});
    assert.ok((info.HostConfig.PidsLimit ?? 0) > 0 && (info.HostConfig.Memory ?? 0) > 0);
    assert.equal(info.State.Health?.Status, "healthy");
    const audit = await ok(["audit", "--env", ENV]);
    assert.match(audit.stdout, new RegExp(COLLECTOR));
    // the files it writes belong to 1000, like everything in a volume fleet makes
    const r = await execIn(engine.getContainer(COLLECTOR), ["stat", "-c", "%u:%g %a %n", "/logs/lg-a", "/logs/lg-a/current.log"]);
    assert.equal(r.exitCode, 0, r.output);
    assert.deepEqual(r.stdout.trim().split("\n").map((l) => l.split(" ")[0]), ["1000:1000", "1000:1000"]);
  });

  it("a plan change replaces lg-a's container: the old container's lines are still shown, beside the new one's, and no one else's", async () => {
    const before = await containerOf("lg-a");
    await emit("lg-a", `print("before-plan-change lg-a", file=out)`);
    await emit("lg-b", `print("lg-b only", file=out)`);
    await ok(["provision", "lg-a", "--env", ENV, "--plan", "standard"]);
    const after = await containerOf("lg-a");
    assert.notEqual(after.Id, before.Id);
    await assert.rejects(engine.getContainer(before.Id).inspect(), "the old container is gone");
    const shown = await logs("lg-a");
    const sources = new Set(shown.map((l) => l.source));
    assert.ok(sources.has(before.Id.slice(0, 12)), `no line of the replaced container ${before.Id.slice(0, 12)}: ${JSON.stringify([...sources])}`);
    assert.ok(sources.has(after.Id.slice(0, 12)), `no line of the new container ${after.Id.slice(0, 12)}`);
    assert.ok(shown.some((l) => l.source === before.Id.slice(0, 12) && l.message === "before-plan-change lg-a"));
    assert.ok(!shown.some((l) => /lg-b only/.test(l.message)), "a line of lg-b is among lg-a's");
    // in time order; gunicorn's start lines are on stderr
    assert.deepEqual(shown.map((l) => l.time), [...shown.map((l) => l.time)].sort());
    assert.ok(shown.some((l) => l.stream === "err" && /Booting worker/.test(l.message)), "gunicorn's start lines (stderr) are there");
  });

  it("an update that never gets healthy is rolled back: the failed container's lines are still shown", async () => {
    const running = await containerOf("lg-c");
    const hc = path.join(root, "examples", "customer-app", "healthcheck.py");
    const good = fs.readFileSync(hc, "utf8");
    fs.writeFileSync(hc, "import sys\nprint('failing-healthcheck', file=sys.stderr)\nsys.exit(1)\n");
    try {
      await ok(["up", ENV]);
      const r = await fleet(root, ["up", `${ENV}-lg-c`]);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, /rolled back/);
    } finally {
      fs.writeFileSync(hc, good);
    }
    assert.equal((await containerOf("lg-c")).Id, running.Id, "the container that ran before runs again");
    const shown = await logs("lg-c");
    const failed = [...new Set(shown.map((l) => l.source))].filter((s) => s !== running.Id.slice(0, 12));
    assert.equal(failed.length, 1, `one other container's lines (the failed one): ${JSON.stringify(failed)}`);
    assert.ok(shown.some((l) => l.source === failed[0] && /Booting worker/.test(l.message)), "the failed container's own lines");
    await ok(["up", ENV]);
  });

  it("-f follows lg-b across a replacement until interrupted; --since, --grep and --tail select", async () => {
    const follow = startFleet(root, ["logs", "lg-b", "--env", ENV, "-f", "--grep", "marker"]);
    await emit("lg-b", `print("marker one", file=out)`);
    await follow.waitFor(/marker one/, 30_000);
    const old = await containerOf("lg-b");
    await ok(["provision", "lg-b", "--env", ENV, "--plan", "standard"]);
    const now = await containerOf("lg-b");
    assert.notEqual(now.Id, old.Id);
    await emit("lg-b", `print("marker two", file=out)`);
    await follow.waitFor(new RegExp(`${now.Id.slice(0, 12)}\\s+out marker two`), 30_000);
    follow.child.kill("SIGINT");
    const exit = await follow.exited;
    assert.equal(exit.code, 0, follow.stderr());
    const followed = parseShown(follow.stdout());
    assert.deepEqual(followed.map((l) => l.message), ["marker one", "marker two"], "each line once, nothing else (--grep)");

    // the app's healthcheck writes a line every few seconds: select among lines that no longer change
    const all = await logs("lg-b");
    assert.ok(all.length > 3);
    assert.deepEqual((await logs("lg-b", "--grep", "^marker", "--tail", "1")).map((l) => l.message), ["marker two"]);
    const tail = await logs("lg-b", "--tail", "2");
    assert.equal(tail.length, 2);
    assert.ok(tail[0]!.time >= all.at(-2)!.time, "--tail gives the newest lines");
    const since = await logs("lg-b", "--since", all.at(-1)!.time);
    assert.ok(since.length >= 1 && since.every((l) => l.time >= all.at(-1)!.time));
    assert.deepEqual((await logs("lg-b", "--since", "1h", "--grep", "^marker (one|two)$")).map((l) => l.message), ["marker one", "marker two"]);
  });

  it("--access: lg-a's requests through the edge proxy, one line each, and none of lg-b's", async () => {
    const base = customerUrlIn(root, ENV, "lg-a");
    for (let i = 0; i < 3; i++) assert.equal((await request(`${base}/healthz?access-probe=${i}`)).status, 200);
    assert.equal((await request(`${customerUrlIn(root, ENV, "lg-b")}/healthz?access-probe=b`)).status, 200);
    // Caddy writes each request's line when it has answered
    let shown: Shown[] = [];
    for (let i = 0; i < 20 && shown.length < 3; i++, await sleep(250)) {
      shown = (await logs("lg-a", "--access", "--grep", "access-probe")).filter(() => true);
    }
    assert.deepEqual(shown.map((l) => l.message.replace(/ \d+ B.*$/, "")), [0, 1, 2].map((i) => `GET /healthz?access-probe=${i} 200`));
    assert.ok(shown.every((l) => l.source === "edge"));
  });

  it("a burst of 3000 lines arrives whole; logrotate keeps lg-c within its bound and the rotated lines are still read", async () => {
    await emit("lg-c", `for i in range(3000):\n    print("burst %04d %s" % (i, "x" * 400), file=out)`);
    const shown = await waitForLines("lg-c", /^burst \d{4} /, 3000);
    assert.equal(shown.length, 3000, "every line of the burst");
    assert.deepEqual(shown.map((l) => Number(l.message.slice(6, 10))), [...Array(3000).keys()]);
    // the collector's minute timer, now: perCustomerMb 2, maxAgeDays 1 -> one rotated file of at most 1 MiB
    const collector = engine.getContainer(COLLECTOR);
    const rotate = await execIn(collector, ["logrotate", "--state", "/logs/.logrotate.state", "/tmp/logrotate.conf"]);
    assert.equal(rotate.exitCode, 0, rotate.output);
    await emit("lg-c", `print("after-rotation", file=out)`);
    const after = await waitForLines("lg-c", /after-rotation/, 1);
    assert.equal(after.length, 1);
    const files = await execIn(collector, ["bash", "-c", "ls /logs/lg-c; du -sk /logs/lg-c | cut -f1"]);
    const lines = files.stdout.trim().split("\n");
    assert.deepEqual(lines.slice(0, -1), ["current.log", "current.log.1"]);
    assert.ok(Number(lines.at(-1)) <= 2 * 1024 + 64, `lg-c takes ${lines.at(-1)} KiB`);
    // the burst is in the rotated file now, and still shown
    assert.equal((await logs("lg-c", "--grep", "^burst ")).length, 3000);
  });

  it("bad input is refused naming the option, before anything is read", async () => {
    const cases: [string[], RegExp][] = [
      [["logs", "lg-a", "--env", ENV, "--since", "yesterday"], /--since/],
      [["logs", "lg-a", "--env", ENV, "--tail", "-3"], /--tail/],
      [["logs", "lg-a", "--env", ENV, "--grep", "(unclosed"], /--grep/],
      [["logs", "Bad_Id", "--env", ENV], /customer/],
      [["logs", "nobody", "--env", ENV], /not a customer of staging/],
      [["logs", "lg-a", "--env", ENV, "--access", "-f"], /--access/],
    ];
    for (const [args, pattern] of cases) {
      const r = await fleet(root, args);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, pattern);
    }
  });
});
