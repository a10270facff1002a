/** Pure helpers of the fleet operations: ports, stack files, rollout config edits, tables. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { setEnvironmentDigest } from "../../src/fleet/rollout";
import { customerConfigs, nextFreePort, readCustomerConfig, writeCustomerStackFile } from "../../src/fleet/stackFiles";
import { passphraseFor, DEMO_PASSPHRASE } from "../../src/fleet/workspace";
import { formatTable } from "../../src/table";
import { projectDir } from "../support/fixtures";

describe("fleet helpers", () => {
  it("picks the lowest free port and says when the range is full", () => {
    assert.equal(nextFreePort({ from: 100, to: 105 }, [100, 101, 103]), 102);
    assert.throws(() => nextFreePort({ from: 100, to: 101 }, [100, 101]), /every port of 100-101 is taken: widen publish.portRange/);
  });

  it("writes customer stack files, keeps what else is there, and lists them per environment", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-stackfiles-"));
    try {
      writeCustomerStackFile(dir, { id: "acme", environment: "staging", plan: "starter", port: 18100 });
      const file = path.join(dir, "Pulumi.staging-acme.yaml");
      fs.appendFileSync(file, "encryptionsalt: v1:keep-me\n");
      writeCustomerStackFile(dir, { id: "acme", environment: "staging", plan: "standard", port: 18100, image: `sha256:${"a".repeat(64)}` });
      writeCustomerStackFile(dir, { id: "beta", environment: "prod", plan: "starter", port: 18200 });
      assert.match(fs.readFileSync(file, "utf8"), /encryptionsalt: v1:keep-me/);
      assert.equal(readCustomerConfig(dir, "staging-acme")?.plan, "standard");
      assert.equal(readCustomerConfig(dir, "staging-acme")?.image, `sha256:${"a".repeat(64)}`);
      assert.deepEqual(customerConfigs(dir, "staging").map((c) => c.id), ["acme"]);
      assert.deepEqual(customerConfigs(dir, "prod").map((c) => c.id), ["beta"]);
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

  it("production stacks demand the operator's passphrase; staging falls back to the demo one", () => {
    assert.throws(() => passphraseFor("prod", {}), /stack 'prod' is production: set PULUMI_CONFIG_PASSPHRASE/);
    assert.throws(() => passphraseFor("prod-acme", {}), /production/);
    assert.equal(passphraseFor("staging-acme", {}), DEMO_PASSPHRASE);
    assert.equal(passphraseFor("prod", { PULUMI_CONFIG_PASSPHRASE: "s3cret" }), "s3cret");
  });

  it("formats a padded table", () => {
    assert.equal(formatTable(["a", "bb"], [["xyz", "1"]]), "a    bb\n---  --\nxyz  1");
  });
});
