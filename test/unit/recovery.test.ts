/** What a crash leaves behind, read without an engine: Pulumi lock files and interrupted creates. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { clearStaleLocks, interruptedCreates, pulumiLockFiles, pulumiRunning } from "../../src/fleet/recovery";

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

describe("crash recovery helpers", () => {
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
      await clearStaleLocks(`file://${dir}`, "staging-c5", (l) => lines.push(l));
      assert.ok(!fs.existsSync(file));
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

  it("a process that is not pulumi (a reused pid) does not count as the lock's holder", () => {
    assert.equal(pulumiRunning(process.pid), false);
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
