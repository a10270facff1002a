/**
 * The supply chain on the real engines, through the fleet CLI as a separate process, in a project
 * copy: staging makes an SBOM, scans and signs the image it builds; prod refuses it while the
 * fixture advisory (a real CVE in the image's zlib1g) is not waived, or its waiver has expired, and
 * takes it with a valid waiver; prod refuses an unsigned digest, a signature moved from another
 * digest and a signature by another key; `fleet signing-key --trust` pins the key; `fleet list`
 * shows the findings; `fleet bases` notices a newer base, and staging rebuilds on it. The policy pack:
 * fleet's own stacks pass it, and a program change that weakens prod's containers stops at preview.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { readStack } from "../../src/pulumi/stackState";
import { addLocalSignature, readLocal } from "../../src/supplyChain/attachments";
import { generateSigningKey, signImage } from "../../src/supplyChain/signature";
import { fleet, show } from "../support/cli";
import { customerContainer, engine, removeCustomers, removeQuietly } from "../support/engine";
import { copyProject, dropEncryptionSalt, editEnvironment, fixtureWaiver, useEdge } from "../support/projectCopy";
import { FIXTURE_ADVISORY } from "../support/trivyFixture";

const EDGE = "edge-sc";
const BASE = "hf-sc/python-base:bookworm";
const CUSTOMER = "sc-p1";
const STAGING_CUSTOMER = "sc-s1";
const PASSPHRASE = "supply-chain-test-passphrase";
const EDGES: [string, string][] = [["staging", EDGE], ["prod", EDGE]];
const ALL: [string, string][] = [["staging", STAGING_CUSTOMER], ["prod", CUSTOMER]];

/** A new image from `from` with one more label: same user, healthcheck and hardening labels, another ID. */
async function derivedImage(from: string, tag: string, label: string): Promise<string> {
  const [repo, version] = tag.split(":");
  const stream = await engine.buildImage({ context: await contextWith(`FROM ${from}\nLABEL io.hardened-fleet.test=${JSON.stringify(label)}\n`), src: ["Dockerfile"] },
    { t: tag });
  await new Promise<void>((resolve, reject) => engine.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
    const failed = out?.find((o) => o.error);
    if (err || failed) reject(err ?? new Error(failed!.error)); else resolve();
  }));
  return (await engine.getImage(`${repo}:${version}`).inspect()).Id;
}

/** A build context directory holding only `dockerfile`. */
async function contextWith(dockerfile: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "hf-sc-ctx-"));
  fs.writeFileSync(path.join(dir, "Dockerfile"), dockerfile);
  return dir;
}

describe("supply chain: SBOM, vulnerability gate and signatures from staging to prod", () => {
  const ctx = copyProject();
  const root = ctx.root;
  const env = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
  const run = (args: string[]) => fleet(root, args, { env, timeoutMs: 900_000 });
  const ok = async (args: string[]) => {
    const r = await run(args);
    assert.equal(r.code, 0, `fleet ${args.join(" ")}: ${show(r)}`);
    return r;
  };
  const refused = async (args: string[]) => {
    const r = await run(args);
    assert.notEqual(r.code, 0, `fleet ${args.join(" ")} should have been refused: ${show(r)}`);
    return r;
  };
  const outputs = async (stack: string) => (await readStack(ctx, stack))?.outputs ?? {};
  const setProd = (edit: (e: Record<string, any>) => void) => editEnvironment(root, "prod", edit);
  const prodEdgeRunning = async () => (await engine.listContainers({ filters: { name: [`hf-prod-${EDGE}`] } })).length > 0;
  let stagingImage = "";
  let stagingName = "";
  const extraImages: string[] = [];

  before(async () => {
    dropEncryptionSalt(root, "staging");
    dropEncryptionSalt(root, "prod");
    useEdge(root, "staging", EDGE, 19520, 19521);
    useEdge(root, "prod", EDGE, 19522, 19523);
    await removeCustomers(ALL, EDGES);
    // staging builds on a tag of its own, so this suite can move it to a "patched" base
    await engine.getImage("hardened-fleet/python-base:bookworm").tag({ repo: "hf-sc/python-base", tag: "bookworm" });
    editEnvironment(root, "staging", (e) => { e.image.base = BASE; });
    // prod starts without the waiver copyProject gives it
    setProd((e) => { e.supplyChain.allow = []; });
  });

  after(async () => {
    await removeCustomers(ALL, EDGES);
    await removeQuietly({ images: [BASE, ...extraImages] });
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("staging builds the image with an SBOM, a scan that finds the fixture advisory, and a signature; fleet sbom prints the SBOM", async () => {
    await ok(["up", "staging"]);
    const out = await outputs("staging");
    stagingImage = (out.image as { ref: string }).ref;
    stagingName = (out.image as { name: string }).name;
    const summary = out.supplyChain as { sbom: { packages: number; format: string }; scan: { scanned: boolean; counts: Record<string, number> };
      signature: { keyFingerprint: string } };
    assert.ok(summary.sbom.packages > 15, JSON.stringify(summary));
    assert.equal(summary.scan.scanned, true);
    assert.equal(summary.scan.counts.CRITICAL, 1, JSON.stringify(summary.scan));
    assert.equal(summary.signature.keyFingerprint, (out.signing as { fingerprint: string }).fingerprint);
    // without a registry, the signature is kept in fleet's store, keyed by the image ID
    assert.equal(readLocal(root, stagingImage, "signatures")!.length, 1);

    const sbom = await ok(["sbom", "staging"]);
    const doc = JSON.parse(sbom.stdout) as { bomFormat: string; components: { name: string; version?: string }[] };
    assert.equal(doc.bomFormat, "CycloneDX");
    const names = doc.components.map((c) => c.name);
    for (const name of ["zlib1g", "libc6", "python3.11-minimal", "gunicorn"]) assert.ok(names.includes(name), `SBOM lacks ${name}: ${names.join(" ")}`);
    assert.ok(!names.includes("bash") && !names.includes("dpkg"), "the runtime has no shell and no dpkg");
  });

  it("prod refuses the image while the critical finding is not waived, naming it, and creates nothing", async () => {
    const r = await refused(["up", "prod"]);
    assert.match(r.stderr, new RegExp(`${FIXTURE_ADVISORY.id}`), show(r));
    assert.match(r.stderr, /zlib1g/);
    assert.match(r.stderr, /CRITICAL/);
    assert.match(r.stderr, /supplyChain\.allow/);
    assert.equal(await prodEdgeRunning(), false, "the refused prod deployment started its edge proxy");
  });

  it("an expired waiver fails again, saying it expired; a valid one lets the image through and is recorded", async () => {
    setProd((e) => { e.supplyChain.allow = [fixtureWaiver(-1)]; });
    const expired = await refused(["up", "prod"]);
    assert.match(expired.stderr, new RegExp(FIXTURE_ADVISORY.id));
    assert.match(expired.stderr, /expired/i, show(expired));
    assert.match(expired.stderr, new RegExp(fixtureWaiver(-1).expires));

    setProd((e) => { e.supplyChain.allow = [fixtureWaiver(1)]; });
    await ok(["up", "prod"]);
    const out = await outputs("prod");
    assert.equal((out.image as { ref: string }).ref, stagingImage);
    const evidence = out.supplyChain as { signature: { trust: string }; scan: { waived: { id: string }[] } };
    assert.deepEqual(evidence.scan.waived.map((w) => w.id), [FIXTURE_ADVISORY.id]);
    assert.equal(evidence.signature.trust, "stack staging");
    assert.equal(await prodEdgeRunning(), true);
  });

  it("prod refuses a key it does not trust; fleet signing-key --trust pins staging's, and prod verifies with it", async () => {
    setProd((e) => { e.supplyChain.publicKey = generateSigningKey().publicKeyPem; });
    const r = await refused(["up", "prod"]);
    assert.match(r.stderr, new RegExp(`image ${stagingImage}`), show(r));
    assert.match(r.stderr, /supplyChain\.publicKey/);

    const pin = await ok(["signing-key", "staging", "--trust", "prod"]);
    assert.match(pin.stdout, /BEGIN PUBLIC KEY/);
    const pinned = (parse(fs.readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8")) as { config: Record<string, any> })
      .config["hardened-fleet:environment"].supplyChain.publicKey as string;
    assert.equal(pinned.trim(), ((await outputs("staging")).signing as { publicKey: string }).publicKey.trim());
    await ok(["up", "prod"]);
    assert.equal(((await outputs("prod")).supplyChain as { signature: { trust: string } }).signature.trust, "supplyChain.publicKey");
  });

  it("prod refuses an unsigned digest, a signature moved from another digest, and one by another key, naming the digest", async () => {
    const unsigned = await derivedImage(stagingName, "hf-sc/unsigned:1", "unsigned");
    extraImages.push("hf-sc/unsigned:1");
    setProd((e) => { e.image.digest = unsigned; });
    const r1 = await refused(["up", "prod"]);
    assert.match(r1.stderr, new RegExp(`image ${unsigned} cannot be promoted`), show(r1));
    assert.match(r1.stderr, /it is not signed/);

    // staging's real signature, copied next to the other image: it names staging's digest
    const staged = readLocal(root, stagingImage, "signatures")!;
    addLocalSignature(root, unsigned, staged[0]!);
    const r2 = await refused(["up", "prod"]);
    assert.match(r2.stderr, new RegExp(stagingImage.slice(7, 30)), show(r2));
    assert.match(r2.stderr, /tampered|reused|names/);

    // a valid signature of exactly this digest, by a key prod does not trust
    const other = generateSigningKey();
    addLocalSignature(root, unsigned, signImage(other.privateKeyPem, "hf-sc/unsigned:1", unsigned));
    const r3 = await refused(["up", "prod"]);
    assert.match(r3.stderr, new RegExp(`image ${unsigned} cannot be promoted`), show(r3));
    assert.match(r3.stderr, /key/);
    // prod still runs staging's image
    setProd((e) => { delete e.image.digest; });
    assert.equal(((await outputs("prod")).image as { ref: string }).ref, stagingImage);
  });

  it("fleet list shows each customer's findings, and the audit passes the shell-less runtime", async () => {
    await ok(["provision", CUSTOMER, "--env", "prod"]);
    const list = await ok(["list", "--env", "prod", "--json"]);
    const row = (JSON.parse(list.stdout) as { customer: string; findings: string }[]).find((c) => c.customer === CUSTOMER)!;
    assert.match(row.findings, /^1 \(1 critical\)$/i, JSON.stringify(row));
    const audit = await ok(["audit", "--env", "prod", "--customer", CUSTOMER]);
    assert.match(audit.stdout, /PASS/);
    assert.match(audit.stdout, /no-shell/);
    assert.match(audit.stdout, /1 \(1 critical\)/i, audit.stdout);
    const info = await customerContainer("prod", CUSTOMER);
    assert.equal(info?.Image, stagingImage);
  });

  it("fleet's own stacks pass the policy pack: fleet preview runs it on staging, prod and a prod customer with no violation", async () => {
    for (const stack of ["staging", "prod", `prod-${CUSTOMER}`]) {
      const r = await ok(["preview", stack]);
      assert.match(r.stderr, /hardened-fleet@v0\.1\.0/, `the pack ran on ${stack}: ${show(r)}`);
      assert.doesNotMatch(r.stderr, /\[(mandatory|advisory)\]/, show(r));
    }
  });

  it("a program change that weakens prod's containers (read-only root off, a capability added without a reason) is stopped at preview, with nothing touched", async () => {
    const file = path.join(root, "components", "containerArgs.ts");
    const original = fs.readFileSync(file, "utf8");
    const customerBefore = (await customerContainer("prod", CUSTOMER))!;
    const edgeBefore = await engine.getContainer(`hf-prod-${EDGE}`).inspect();
    const stateBefore = await readStack(ctx, `prod-${CUSTOMER}`);
    const weakened = original
      .replace("readOnly: spec.readOnlyRootfs,", "readOnly: false,")
      .replace("capabilities: { drops: spec.capDrop, adds: spec.capAdd },", "capabilities: { drops: spec.capDrop, adds: [...spec.capAdd, \"NET_ADMIN\"] },");
    assert.notEqual(weakened, original, "the weakening edit applies to components/containerArgs.ts");
    fs.writeFileSync(file, weakened);
    try {
      for (const stack of ["prod", `prod-${CUSTOMER}`]) {
        const r = await refused(["up", stack]);
        assert.match(r.stderr, /stopped by the policy pack/, show(r));
        assert.match(r.stderr, /nothing was changed/, show(r));
        assert.match(r.stderr, /read-only-root/, show(r));
        assert.match(r.stderr, /capabilities-dropped/, show(r));
        assert.match(r.stderr, /adds NET_ADMIN without a stated reason/, show(r));
      }
      // nothing touched: the same containers, running, and the customer stack's state as it was
      const customerAfter = (await customerContainer("prod", CUSTOMER))!;
      assert.equal(customerAfter.Id, customerBefore.Id);
      assert.equal(customerAfter.State.Running, true);
      assert.equal(customerAfter.HostConfig.ReadonlyRootfs, true);
      const edgeAfter = await engine.getContainer(`hf-prod-${EDGE}`).inspect();
      assert.equal(edgeAfter.Id, edgeBefore.Id);
      assert.deepEqual((await readStack(ctx, `prod-${CUSTOMER}`))?.outputs, stateBefore?.outputs);
      assert.equal((await readStack(ctx, `prod-${CUSTOMER}`))?.lastUpdate, stateBefore?.lastUpdate);
    } finally {
      fs.writeFileSync(file, original);
    }
  });

  it("fleet bases notices a newer base digest; staging rebuilds on it and is current again", async () => {
    const current = await run(["bases", "--env", "staging"]);
    assert.equal(current.code, 0, show(current));
    assert.match(current.stdout, /current/);
    // the "patched" base: a new image under the same tag
    await derivedImage("hardened-fleet/python-base:bookworm", BASE, "patched");
    const stale = await run(["bases", "--env", "staging"]);
    assert.equal(stale.code, 3, show(stale));
    assert.match(stale.stdout, /STALE/);
    await ok(["up", "staging"]);
    const rebuilt = ((await outputs("staging")).image as { ref: string }).ref;
    assert.notEqual(rebuilt, stagingImage, "staging did not rebuild on the newer base");
    const again = await run(["bases", "--env", "staging"]);
    assert.equal(again.code, 0, show(again));
    assert.match(again.stdout, /current/);
  });
});
