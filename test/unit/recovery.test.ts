/**
 * What a crash leaves behind, read without an engine: Pulumi lock files, whether their holder still
 * runs (real child processes, named pulumi or not), the file backend's metadata files left empty,
 * and interrupted creates.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { clearStaleLocks, interruptedCreates, pulumiLockFiles, pulumiRunning, repairMetadataFiles } from "../../src/pulumi/recovery";

function backendWithLock(stack: string, lock: object): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-backend-"));
  const lockDir = path.join(dir, ".pulumi", "locks", "organization", "hardened-fleet", stack);
  fs.mkdirSync(lockDir, { recursive: true });
  const file = path.join(lockDir, "0b6d1f52-lock.json");
  fs.writeFileSync(file, JSON.stringify(lock));
  return { dir, file };
}

function deadPid(): number {
  const r = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" });
  return Number(r.stdout.trim());
}

/** A live process running `sleep seconds` under the program name `argv0` (what /proc/<pid>/cmdline shows first). */
async function sleeper(seconds: number, argv0?: string): Promise<ChildProcess & { pid: number }> {
  const child = spawn("sleep", [String(seconds)], { argv0, stdio: "ignore" });
  await new Promise<void>((resolve, reject) => child.once("spawn", resolve).once("error", reject));
  return child as ChildProcess & { pid: number };
}

/** Ends a sleeper and waits until it is reaped. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
}

describe("crash recovery helpers", () => {
  it("removes the stack's metadata files a killed pulumi left unreadable, and nothing else", () => {
    const { dir, file } = backendWithLock("staging-c5", { pid: 1 });
    const stacks = path.join(dir, ".pulumi", "stacks", "hardened-fleet");
    const history = path.join(dir, ".pulumi", "history", "hardened-fleet", "staging-c5");
    fs.mkdirSync(stacks, { recursive: true });
    fs.mkdirSync(history, { recursive: true });
    const attrs = '{"user.content_type":"text/plain; charset=utf-8","md5":"pteKxEYhyI7SrxZpT5TriA=="}\n';
    const write = (f: string, text: string) => { fs.writeFileSync(f, text); return f; };
    try {
      write(path.join(stacks, "staging-c5.json"), "{}");
      const empty = write(path.join(stacks, "staging-c5.json.attrs"), "");
      const cut = write(path.join(stacks, "staging-c5.json.bak.attrs"), attrs.slice(0, 20));
      const lockAttrs = write(`${file}.attrs`, "");
      const historyAttrs = write(path.join(history, "staging-c5-1.history.json.attrs"), "");
      const whole = write(path.join(history, "staging-c5-2.history.json.attrs"), attrs);
      const checkpoint = path.join(stacks, "staging-c5.json");
      const neighbour = write(path.join(stacks, "staging-c50.json.attrs"), "");
      const other = write(path.join(stacks, "staging.json.attrs"), "");
      assert.deepEqual(repairMetadataFiles(dir, "staging-c5").sort(), [empty, cut, lockAttrs, historyAttrs].sort());
      for (const kept of [whole, checkpoint, neighbour, other, file]) assert.ok(fs.existsSync(kept), `${kept} stays`);
      assert.deepEqual(repairMetadataFiles(dir, "staging-c5"), [], "nothing more the second time");
      assert.deepEqual(repairMetadataFiles(path.join(dir, "missing"), "staging-c5"), [], "a backend not made yet");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("finds a stack's lock files and only that stack's", () => {
    const { dir, file } = backendWithLock("staging-c5", { pid: 1 });
    fs.mkdirSync(path.join(dir, ".pulumi", "locks", "organization", "hardened-fleet", "staging-c6"), { recursive: true });
    try {
      assert.deepEqual(pulumiLockFiles(dir, "staging-c5"), [file]);
      assert.deepEqual(pulumiLockFiles(dir, "staging-c6"), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("clears a lock of this host whose process is gone, and says so", async () => {
    const pid = deadPid();
    assert.equal(pulumiRunning(pid), false);
    const { dir, file } = backendWithLock("staging-c5", { pid, hostname: os.hostname(), timestamp: "2026-11-23T10:00:00Z" });
    const lines: string[] = [];
    try {
      fs.writeFileSync(`${file}.attrs`, '{"md5":"x"}');
      await clearStaleLocks(`file://${dir}`, "staging-c5", (l) => lines.push(l));
      assert.ok(!fs.existsSync(file));
      assert.ok(!fs.existsSync(`${file}.attrs`), "the lock's metadata goes with it");
      assert.match(lines.join("\n"), new RegExp(`cleared a Pulumi lock left by pid ${pid} .* no longer running`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("never touches a lock of another host, and says how to clear it", async () => {
    const { dir, file } = backendWithLock("prod", { pid: 42, hostname: "other-host", timestamp: "t" });
    try {
      await assert.rejects(clearStaleLocks(`file://${dir}`, "prod", () => {}), /locked by pid 42 on host other-host .* remove .*lock\.json and run this again/);
      assert.ok(fs.existsSync(file));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a running process named pulumi counts as the lock's holder, by its program's name or path, until it ends", async () => {
    for (const argv0 of ["pulumi", "/home/ops/.pulumi/bin/pulumi"]) {
      const child = await sleeper(30, argv0);
      try {
        assert.equal(pulumiRunning(child.pid), true, argv0);
      } finally {
        await stop(child);
      }
      assert.equal(pulumiRunning(child.pid), false, `${argv0} after it ended`);
    }
  });

  it("a running process that is not pulumi (a reused pid) does not count as the lock's holder", async () => {
    const child = await sleeper(30, "/opt/pulumi/bin/not-pulumi");
    const plain = await sleeper(30);
    try {
      assert.equal(pulumiRunning(child.pid), false);
      assert.equal(pulumiRunning(plain.pid), false);
      assert.equal(pulumiRunning(process.pid), false);
    } finally {
      await stop(child);
      await stop(plain);
    }
  });

  it("waits for a lock whose pulumi still runs: gives up after the wait, keeping the lock, or clears it once that pulumi ends", async () => {
    const holder = await sleeper(30, "pulumi");
    const held = backendWithLock("staging-c7", { pid: holder.pid, hostname: os.hostname(), timestamp: "t" });
    try {
      await assert.rejects(clearStaleLocks(`file://${held.dir}`, "staging-c7", () => {}, 1),
        new RegExp(`still locked by a running pulumi \\(pid ${holder.pid}\\) after 1s: let it finish, or stop it \\(kill ${holder.pid}\\)`));
      assert.ok(fs.existsSync(held.file), "the lock of a running pulumi stays");
    } finally {
      await stop(holder);
      fs.rmSync(held.dir, { recursive: true, force: true });
    }

    const finishing = await sleeper(1, "pulumi");
    const { dir, file } = backendWithLock("staging-c8", { pid: finishing.pid, hostname: os.hostname(), timestamp: "t" });
    const lines: string[] = [];
    const started = Date.now();
    try {
      await clearStaleLocks(`file://${dir}`, "staging-c8", (l) => lines.push(l), 30);
      assert.ok(Date.now() - started >= 800, `it waited for the holder (sleep 1) to end: ${Date.now() - started} ms`);
      assert.ok(!fs.existsSync(file));
      assert.match(lines.join("\n"), new RegExp(`cleared a Pulumi lock left by pid ${finishing.pid} .* no longer running`));
    } finally {
      await stop(finishing);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the containers and networks an interrupted create may have left", () => {
    const op = (type: string, name: string, urnName: string) => ({ type: "creating",
      resource: { urn: `urn:pulumi:staging-c5::hardened-fleet::x$${type}::${urnName}`, type, inputs: { name } } });
    const found = interruptedCreates({ pending_operations: [
      op("docker:index/container:Container", "hf-staging-c5", "c5-container"),
      op("docker:index/network:Network", "hf-staging-c5-net", "c5-net"),
      op("docker:index/volume:Volume", "hf-staging-c5-data", "c5-data"),
      { type: "updating", resource: { urn: "urn:x", type: "docker:index/container:Container", inputs: { name: "hf-staging-c6" } } },
    ] });
    assert.deepEqual(found.containers, ["hf-staging-c5"]);
    assert.deepEqual(found.networks, ["hf-staging-c5-net"]);
    // the volume is never removed: it is adopted again by name
    assert.equal(found.other.length, 1);
  });
});
