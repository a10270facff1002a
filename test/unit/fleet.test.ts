/** Pure helpers of the fleet operations: host ports, stack files, rollout config edits, tables. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { defaultConcurrency, mapBounded, setEnvironmentDigest } from "../../src/fleet/rollout";
import * as net from "node:net";
import { parseStackTarget } from "../../src/config/targets";
import { customerConfigs, readCustomerConfig, writeCustomerStackFile } from "../../src/project/stackFiles";
import { portFree } from "../../src/fleet/edge";
import { passphraseFor, DEMO_PASSPHRASE } from "../../src/pulumi/workspace";
import { formatTable } from "../../src/table";
import { projectDir } from "../support/fixtures";

describe("fleet helpers", () => {
  it("runs a wave's customers at most `limit` at once, keeping their order in the results", async () => {
    let running = 0;
    let peak = 0;
    const results = await mapBounded([50, 10, 30, 20, 40, 5], 3, async (ms) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return ms * 2;
    });
    assert.deepEqual(results, [100, 20, 60, 40, 80, 10]);
    assert.equal(peak, 3);
    const one: number[] = [];
    await mapBounded([1, 2, 3], 1, async (n) => { one.push(n); });
    assert.deepEqual(one, [1, 2, 3]);
    assert.deepEqual(await mapBounded([], 4, async () => 1), []);
  });

  it("deploys as many customers at once as configured, else one per core (two at least)", () => {
    assert.equal(defaultConcurrency(3, 16), 3);
    assert.equal(defaultConcurrency(undefined, 8), 8);
    assert.equal(defaultConcurrency(undefined, 1), 2);
  });

  it("sees a port that a foreign process listens on as taken", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      assert.equal(await portFree("127.0.0.1", port), false);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(await portFree("127.0.0.1", port), true);
  });

  it("writes customer stack files, keeps what else is there, and lists them per environment", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-stackfiles-"));
    try {
      writeCustomerStackFile(dir, { id: "acme", environment: "staging", plan: "starter" });
      const file = path.join(dir, "Pulumi.staging-acme.yaml");
      fs.appendFileSync(file, "encryptionsalt: v1:keep-me\n");
      writeCustomerStackFile(dir, { id: "acme", environment: "staging", plan: "standard", image: `sha256:${"a".repeat(64)}` });
      writeCustomerStackFile(dir, { id: "beta", environment: "prod", plan: "starter" });
      assert.match(fs.readFileSync(file, "utf8"), /encryptionsalt: v1:keep-me/);
      assert.deepEqual(readCustomerConfig(dir, "staging-acme"),
        { id: "acme", environment: "staging", plan: "standard", image: `sha256:${"a".repeat(64)}` });
      assert.deepEqual(customerConfigs(dir, "staging").map((c) => c.id), ["acme"]);
      assert.deepEqual(customerConfigs(dir, "prod").map((c) => c.id), ["beta"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes no host port for a customer, and drops the port of a file from before the edge proxy", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-stackfiles-"));
    try {
      const file = path.join(dir, "Pulumi.staging-old.yaml");
      fs.writeFileSync(file, [
        "config:",
        "  hardened-fleet:role: customer",
        "  hardened-fleet:customer: {id: old, environment: staging, plan: starter, port: 18101}",
        "encryptionsalt: v1:keep-me",
        "",
      ].join("\n"));
      assert.equal(readCustomerConfig(dir, "staging-old")?.port, 18101);
      // what provision does with an old customer: its config comes back without the port
      writeCustomerStackFile(dir, { id: "old", environment: "staging", plan: "starter", port: 18101 });
      const text = fs.readFileSync(file, "utf8");
      assert.doesNotMatch(text, /port/);
      assert.doesNotMatch(text, /18101/);
      assert.match(text, /encryptionsalt: v1:keep-me/);
      assert.deepEqual(readCustomerConfig(dir, "staging-old"), { id: "old", environment: "staging", plan: "starter" });
      writeCustomerStackFile(dir, { id: "new", environment: "staging", plan: "standard" });
      assert.doesNotMatch(fs.readFileSync(path.join(dir, "Pulumi.staging-new.yaml"), "utf8"), /port/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("sets and clears prod's promoted image ID without touching the rest of the file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-digest-"));
    try {
      fs.copyFileSync(path.join(projectDir, "Pulumi.prod.yaml"), path.join(dir, "Pulumi.prod.yaml"));
      const read = () => parse(fs.readFileSync(path.join(dir, "Pulumi.prod.yaml"), "utf8")).config["hardened-fleet:environment"];
      const before = read();
      const digest = `sha256:${"b".repeat(64)}`;
      setEnvironmentDigest(dir, "prod", digest);
      assert.equal(read().image.digest, digest);
      assert.deepEqual({ ...read(), image: before.image }, before);
      setEnvironmentDigest(dir, "prod", undefined);
      assert.deepEqual(read(), before);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("only the environment marked localDemo may use the demo passphrase, whatever the stack is called", () => {
    assert.throws(() => passphraseFor(projectDir, parseStackTarget("prod"), {}), /environment 'prod' \(tier production\), which is not the local demo: set PULUMI_CONFIG_PASSPHRASE/);
    assert.throws(() => passphraseFor(projectDir, parseStackTarget("prod-acme"), {}), /not the local demo/);
    assert.equal(passphraseFor(projectDir, parseStackTarget("staging-acme"), {}), DEMO_PASSPHRASE);
    assert.equal(passphraseFor(projectDir, parseStackTarget("prod"), { PULUMI_CONFIG_PASSPHRASE: "s3cret" }), "s3cret");
    // a staging-tier environment that is not marked as the demo gets no default either
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-passphrase-"));
    try {
      const text = fs.readFileSync(path.join(projectDir, "Pulumi.staging.yaml"), "utf8").replace(/^\s*localDemo: true\n/m, "");
      fs.writeFileSync(path.join(dir, "Pulumi.qa.yaml"), text.replace("name: staging", "name: qa"));
      assert.throws(() => passphraseFor(dir, parseStackTarget("qa-acme"), {}), /environment 'qa' \(tier staging\), which is not the local demo/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("formats a padded table", () => {
    assert.equal(formatTable(["a", "bb"], [["xyz", "1"]]), "a    bb\n---  --\nxyz  1");
  });
});
