import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { describe, it } from "node:test";
import { maskSecrets, parseCheckpoint } from "../../src/project/backendState";
import { readStack, readStacks } from "../../src/pulumi/stackState";
import { changesFromEventLog } from "../../src/pulumi/stacks";
import type { FleetContext } from "../../src/pulumi/workspace";

const SECRET = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", ciphertext: "v1:abc" };

function checkpoint(outputs: Record<string, unknown>, opts: { pending?: unknown[]; protect?: boolean; time?: string } = {}): string {
  return JSON.stringify({ version: 3, checkpoint: { stack: "x", latest: {
    manifest: { time: opts.time ?? "2026-11-25T10:00:00Z" },
    resources: [
      { urn: "urn:pulumi:x::hardened-fleet::pulumi:pulumi:Stack::hardened-fleet-x", type: "pulumi:pulumi:Stack", outputs },
      { urn: "urn:v", type: "docker:index/volume:Volume", protect: opts.protect ?? false },
    ],
    pending_operations: opts.pending ?? [],
  } } });
}

describe("backend state, read without Pulumi", () => {
  it("masks every secret of a checkpoint, however deep", () => {
    assert.deepEqual(maskSecrets({ a: 1, b: SECRET, c: [SECRET, { d: SECRET, e: "x" }] }), { a: 1, b: "[secret]", c: ["[secret]", { d: "[secret]", e: "x" }] });
  });

  it("takes outputs, last update, interrupted operations and protection from a checkpoint", () => {
    const s = parseCheckpoint("staging-acme", checkpoint({ image: "sha256:1", key: SECRET }, { pending: [{}], protect: true }));
    assert.deepEqual(s.outputs, { image: "sha256:1", key: "[secret]" });
    assert.equal(s.lastUpdate, "2026-11-25T10:00:00Z");
    assert.equal(s.pendingOperations, 1);
    assert.equal(s.protectedResources, 1);
    // initialized, never deployed
    const empty = parseCheckpoint("staging-new", JSON.stringify({ version: 3, checkpoint: { stack: "x" } }));
    assert.deepEqual([empty.outputs, empty.lastUpdate, empty.pendingOperations], [{}, undefined, 0]);
  });

  it("lists a file backend's stacks of the project, plain and gzipped, and reads one", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "hf-backend-"));
    try {
      fs.writeFileSync(path.join(root, "Pulumi.yaml"), "name: hardened-fleet\nruntime: nodejs\n");
      const dir = path.join(root, "state", ".pulumi", "stacks", "hardened-fleet");
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "staging.json"), checkpoint({ image: { ref: "sha256:e" } }));
      fs.writeFileSync(path.join(dir, "staging.json.bak"), checkpoint({ image: { ref: "sha256:old" } }));
      fs.writeFileSync(path.join(dir, "staging-acme.json.gz"), zlib.gzipSync(checkpoint({ image: "sha256:a" })));
      const ctx: FleetContext = { projectDir: root, backendUrl: `file://${path.join(root, "state")}` };
      const all = await readStacks(ctx);
      assert.deepEqual([...all.keys()].sort(), ["staging", "staging-acme"]);
      assert.deepEqual(all.get("staging")!.outputs, { image: { ref: "sha256:e" } });
      assert.equal((await readStack(ctx, "staging-acme"))!.outputs.image, "sha256:a");
      assert.equal(await readStack(ctx, "staging-none"), undefined);
      fs.writeFileSync(path.join(dir, "staging.json"), "{ half written");
      await assert.rejects(readStack(ctx, "staging"), /cannot read the state|JSON/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("takes a run's resource changes from the engine's summary event", () => {
    const log = [
      JSON.stringify({ sequence: 0, preludeEvent: {} }),
      JSON.stringify({ sequence: 7, summaryEvent: { resourceChanges: { same: 5, update: 1 } } }),
      JSON.stringify({ sequence: 8, cancelEvent: {} }),
    ].join("\n");
    assert.deepEqual(changesFromEventLog(log), { same: 5, update: 1 });
    assert.deepEqual(changesFromEventLog(""), {});
  });
});
