/** fleet logs without a running collector reads the container's own lines through the engine (src/fleet/logs.ts engineLogs), on the real engine. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { engineLogs } from "../../src/fleet/logs";
import { engine } from "../support/engine";

describe("fleet logs' fallback to the engine's own lines", () => {
  it("reads a container's stdout and stderr lines, with their times, whole (no follow) and in order", async () => {
    const c = await engine.createContainer({ Image: "hardened-fleet/python-base:bookworm", name: `hf-logsfallback-${process.pid}`,
      // a pause between the lines: the engine logs stdout and stderr from two pipes, so lines written
      // in the same instant may be stored in either order
      Cmd: ["python3", "-c", "import sys, time\nprint('out one', flush=True)\ntime.sleep(0.5)\nprint('err two', file=sys.stderr, flush=True)\ntime.sleep(60)"] });
    try {
      await c.start();
      const got: string[] = [];
      for (let i = 0; i < 40 && got.length < 2; i++) {
        got.length = 0;
        await engineLogs(engine, { container: c.id }, { customer: "x", filter: {} }, { line: (l) => got.push(l), note: () => {} });
        if (got.length < 2) await new Promise((r) => setTimeout(r, 250));
      }
      assert.deepEqual(got.map((l) => l.replace(/^\S+ /, "")), [`${c.id.slice(-12)} out out one`, `${c.id.slice(-12)} err err two`]);
      assert.ok(got.every((l) => !Number.isNaN(Date.parse(l.split(" ")[0]!))), got.join("\n"));
    } finally {
      await c.remove({ force: true });
    }
  });
});
