/**
 * Image signatures (cosign's key-based format) and where they are kept, without a registry: sign and
 * verify, every way verification refuses, key parsing errors, image references, fleet's local store.
 */
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import {
  COSIGN_SIGNATURE_TYPE, generateSigningKey, keyFingerprint, parsePrivateKey, parsePublicKey, publicKeyOf, signImage, verifyImage,
  type SignatureRecord,
} from "../../src/supplyChain/signature";
import { addLocalSignature, attachmentConfig, attachmentTag, localFile, parseImageRef, readLocal, writeLocal } from "../../src/supplyChain/attachments";
import { inCidr, parseChallenge, schemeFromRegistryConfig } from "../../src/supplyChain/ociRegistry";

const digest = `sha256:${"ab".repeat(32)}`;
const otherDigest = `sha256:${"cd".repeat(32)}`;
const ref = "10.0.0.5:5000/hardened-fleet/app";
const key = generateSigningKey();
const other = generateSigningKey();

function flipByte(b64: string, index: number): string {
  const bytes = Buffer.from(b64, "base64");
  bytes[index] = bytes[index]! ^ 0x01;
  return bytes.toString("base64");
}

describe("signImage / verifyImage", () => {
  it("round trip: the payload is cosign's simple signing payload, the signature verifies with node:crypto", () => {
    const record = signImage(key.privateKeyPem, ref, digest, { env: "staging" });
    const payload = JSON.parse(Buffer.from(record.payload, "base64").toString("utf8"));
    assert.deepEqual(payload, {
      critical: { identity: { "docker-reference": ref }, image: { "docker-manifest-digest": digest }, type: COSIGN_SIGNATURE_TYPE },
      optional: { env: "staging" },
    });
    assert.equal(JSON.parse(Buffer.from(signImage(key.privateKeyPem, ref, digest).payload, "base64").toString()).optional, null);
    assert.ok(crypto.verify("sha256", Buffer.from(record.payload, "base64"), key.publicKeyPem, Buffer.from(record.signature, "base64")));
    const result = verifyImage(key.publicKeyPem, digest, [record]);
    assert.equal(result.ok, true);
    assert.ok(result.ok && result.dockerReference === ref && result.keyFingerprint === keyFingerprint(key.publicKeyPem));
  });

  it("no records: unsigned, naming the digest and what to do", () => {
    const result = verifyImage(key.publicKeyPem, digest, []);
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.reason === "unsigned");
    assert.match(!result.ok ? result.message : "", new RegExp(`${digest}.*sign it by deploying it through staging with the signing key`));
  });

  it("a signature by another key: other-key", () => {
    const result = verifyImage(key.publicKeyPem, digest, [signImage(other.privateKeyPem, ref, digest)]);
    assert.ok(!result.ok && result.reason === "other-key");
    assert.match(!result.ok ? result.message : "", /signed by a key whose public key is not supplyChain\.publicKey/);
    assert.ok(!result.ok && result.message.includes(digest));
  });

  it("this key's signature of another digest: wrong-digest, naming both", () => {
    const moved = signImage(key.privateKeyPem, ref, otherDigest);
    const result = verifyImage(key.publicKeyPem, digest, [moved]);
    assert.ok(!result.ok && result.reason === "wrong-digest");
    assert.ok(!result.ok && result.message.includes(digest));
    assert.match(!result.ok ? result.message : "", new RegExp(`its signature names ${otherDigest} \\(tampered or reused\\)`));
  });

  it("a payload edited to name the digest no longer verifies", () => {
    const moved = signImage(key.privateKeyPem, ref, otherDigest);
    const edited = Buffer.from(Buffer.from(moved.payload, "base64").toString().replace(otherDigest, digest)).toString("base64");
    const result = verifyImage(key.publicKeyPem, digest, [{ payload: edited, signature: moved.signature }]);
    assert.ok(!result.ok && result.reason === "other-key");
  });

  it("a flipped byte anywhere in the signature or the payload fails", () => {
    const record = signImage(key.privateKeyPem, ref, digest);
    const sigLength = Buffer.from(record.signature, "base64").length;
    for (const i of [0, 3, 10, sigLength - 1]) {
      assert.equal(verifyImage(key.publicKeyPem, digest, [{ ...record, signature: flipByte(record.signature, i) }]).ok, false, `signature byte ${i}`);
    }
    assert.equal(verifyImage(key.publicKeyPem, digest, [{ ...record, payload: flipByte(record.payload, 20) }]).ok, false);
  });

  it("one good record among bad ones is enough; the most telling failure is reported otherwise", () => {
    const good = signImage(key.privateKeyPem, ref, digest);
    const foreign = signImage(other.privateKeyPem, ref, digest);
    const moved = signImage(key.privateKeyPem, ref, otherDigest);
    assert.equal(verifyImage(key.publicKeyPem, digest, [foreign, moved, good]).ok, true);
    const r = verifyImage(key.publicKeyPem, digest, [foreign, moved]);
    assert.ok(!r.ok && r.reason === "wrong-digest");
  });

  it("records that are not base64, or a payload of another type: malformed", () => {
    const r1 = verifyImage(key.publicKeyPem, digest, [{ payload: "not base64!", signature: "AAAA" }]);
    assert.ok(!r1.ok && r1.reason === "malformed" && /not base64/.test(r1.message));
    const r2 = verifyImage(key.publicKeyPem, digest, [{ payload: "", signature: "" }, null as unknown as SignatureRecord]);
    assert.ok(!r2.ok && r2.reason === "malformed");
    const payload = Buffer.from(JSON.stringify({ critical: { type: "atomic container signature" } }));
    const signature = crypto.sign("sha256", payload, key.privateKeyPem).toString("base64");
    const r3 = verifyImage(key.publicKeyPem, digest, [{ payload: payload.toString("base64"), signature }]);
    assert.ok(!r3.ok && r3.reason === "malformed" && /not a cosign image signature payload/.test(r3.message));
  });

  it("keys: clear errors for what is not a P-256 PEM key; the public key of a private key; a stable fingerprint", () => {
    assert.throws(() => parsePublicKey("hello"), /^Error: supplyChain\.publicKey is not a PEM public key: /);
    assert.throws(() => parsePublicKey("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"), /supplyChain\.publicKey is not a PEM public key: /);
    assert.throws(() => parsePublicKey(key.privateKeyPem), /holds a private key/);
    assert.throws(() => verifyImage("garbage", digest, []), /supplyChain\.publicKey is not a PEM public key/);
    const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 });
    assert.throws(() => parsePublicKey(rsa.publicKey.export({ type: "spki", format: "pem" }).toString()), /rsa key, not ECDSA P-256/);
    const p384 = crypto.generateKeyPairSync("ec", { namedCurve: "P-384" });
    assert.throws(() => parsePrivateKey(p384.privateKey.export({ type: "pkcs8", format: "pem" }).toString()), /secp384r1, not ECDSA P-256/);
    assert.throws(() => signImage("nope", ref, digest), /supplyChain\.signingKey is not a PEM private key/);
    assert.throws(() => parsePrivateKey("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nx\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"), /encrypted/);
    assert.throws(() => signImage(key.privateKeyPem, ref, "sha256:abc"), /not a sha256 digest/);
    // SEC1 ("EC PRIVATE KEY") works as well as PKCS#8
    const sec1 = crypto.createPrivateKey(key.privateKeyPem).export({ type: "sec1", format: "pem" }).toString();
    assert.equal(verifyImage(key.publicKeyPem, digest, [signImage(sec1, ref, digest)]).ok, true);

    assert.equal(publicKeyOf(key.privateKeyPem), key.publicKeyPem);
    const fp = keyFingerprint(key.publicKeyPem);
    assert.match(fp, /^[0-9a-f]{64}$/);
    assert.equal(keyFingerprint(key.publicKeyPem), fp);
    assert.equal(keyFingerprint(publicKeyOf(key.privateKeyPem)), fp);
    const der = crypto.createPublicKey(key.publicKeyPem).export({ type: "spki", format: "der" });
    assert.equal(fp, crypto.createHash("sha256").update(der).digest("hex"));
    assert.notEqual(keyFingerprint(other.publicKeyPem), fp);
  });
});

describe("image references and attachment tags", () => {
  it("a repository digest and a bare image ID", () => {
    assert.deepEqual(parseImageRef(`${ref}@${digest}`), { registry: "10.0.0.5:5000", repo: "hardened-fleet/app", digest });
    assert.deepEqual(parseImageRef(`${ref}:1@${digest}`), { registry: "10.0.0.5:5000", repo: "hardened-fleet/app", digest });
    assert.deepEqual(parseImageRef(`localhost/app@${digest}`), { registry: "localhost", repo: "app", digest });
    assert.deepEqual(parseImageRef(`python@${digest}`), { registry: "docker.io", repo: "library/python", digest });
    assert.deepEqual(parseImageRef(digest), { registry: undefined, repo: undefined, digest });
    assert.throws(() => parseImageRef("10.0.0.5:5000/app:1"), /image "10\.0\.0\.5:5000\/app:1" is neither an image ID/);
    assert.throws(() => parseImageRef("r.example/app@sha256:12"), /image "r\.example\/app@sha256:12": "sha256:12" is not a sha256 digest/);
    assert.throws(() => parseImageRef(`r.example/App@${digest}`), /is not a repository name/);
  });

  it("cosign's tags: sha256-<hex>.sig and .sbom", () => {
    assert.equal(attachmentTag(digest, "sig"), `sha256-${"ab".repeat(32)}.sig`);
    assert.equal(attachmentTag(digest, "sbom"), `sha256-${"ab".repeat(32)}.sbom`);
  });

  it("the config of an attachment is go-containerregistry's for an empty image with those layers", () => {
    assert.deepEqual(JSON.parse(attachmentConfig([digest]).toString()), {
      architecture: "", created: "0001-01-01T00:00:00Z", history: [{ created: "0001-01-01T00:00:00Z" }], os: "",
      rootfs: { type: "layers", diff_ids: [digest] }, config: {},
    });
  });
});

describe("registry helpers", () => {
  it("the engine's insecure registries: an insecure index, or an address in InsecureRegistryCIDRs, is plain HTTP", () => {
    const config = { IndexConfigs: { "docker.io": { Secure: true }, "reg.lan:5000": { Secure: false } }, InsecureRegistryCIDRs: ["127.0.0.0/8", "10.231.0.0/16"] };
    assert.equal(schemeFromRegistryConfig(config, "127.0.0.1:5000", ["127.0.0.1"]), "http");
    assert.equal(schemeFromRegistryConfig(config, "localhost:5000", ["127.0.0.1", "::1"]), "http");
    assert.equal(schemeFromRegistryConfig(config, "10.231.0.11:5000", ["10.231.0.11"]), "http");
    assert.equal(schemeFromRegistryConfig(config, "reg.lan:5000", ["192.168.1.9"]), "http");
    assert.equal(schemeFromRegistryConfig(config, "registry.example.com", ["203.0.113.7"]), "https");
    assert.equal(schemeFromRegistryConfig(undefined, "127.0.0.1:5000", ["127.0.0.1"]), "https");
    assert.equal(inCidr("::1", "::1/128"), true);
    assert.equal(inCidr("127.0.0.1", "::1/128"), false);
  });

  it("WWW-Authenticate challenges", () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'),
      { scheme: "bearer", params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull" } });
    assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: "basic", params: { realm: "Registry Realm" } });
    assert.equal(parseChallenge(undefined), undefined);
  });
});

describe("fleet's store (no registry)", () => {
  const projectDir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-supply-"));
  after(() => fs.rmSync(projectDir, { recursive: true, force: true }));

  it("signatures, SBOM and findings per image ID: 0600 files in 0700 directories; none yet reads as empty", () => {
    assert.deepEqual(readLocal(projectDir, digest, "signatures"), []);
    assert.equal(readLocal(projectDir, digest, "sbom"), undefined);
    const record = signImage(key.privateKeyPem, "hardened-fleet/app", digest);
    addLocalSignature(projectDir, digest, record);
    addLocalSignature(projectDir, digest, record);
    addLocalSignature(projectDir, digest, signImage(other.privateKeyPem, "hardened-fleet/app", digest));
    const records = readLocal(projectDir, digest, "signatures")!;
    assert.equal(records.length, 2);
    assert.equal(verifyImage(key.publicKeyPem, digest, records).ok, true);
    writeLocal(projectDir, digest, "sbom", { bomFormat: "CycloneDX", specVersion: "1.5" });
    writeLocal(projectDir, digest, "findings", [{ id: "CVE-2024-0001", severity: "CRITICAL" }]);
    assert.deepEqual(readLocal(projectDir, digest, "sbom"), { bomFormat: "CycloneDX", specVersion: "1.5" });
    const file = localFile(projectDir, digest, "signatures");
    assert.equal(file, path.join(projectDir, ".fleet", "supply-chain", "ab".repeat(32), "signatures.json"));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(localFile(projectDir, digest, "sbom")).mode & 0o777, 0o600);
    assert.match(localFile(projectDir, digest, "sbom"), /sbom\.cdx\.json$/);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(projectDir, ".fleet", "supply-chain")).mode & 0o777, 0o700);
    assert.deepEqual(fs.readdirSync(path.dirname(file)).sort(), ["findings.json", "sbom.cdx.json", "signatures.json"]);
  });

  it("a damaged file is an error naming it; an image ID is required", () => {
    fs.writeFileSync(localFile(projectDir, digest, "findings"), "{");
    assert.throws(() => readLocal(projectDir, digest, "findings"), /findings\.json is not JSON/);
    assert.throws(() => writeLocal(projectDir, "app:1", "sbom", {}), /image ID "app:1" is not a sha256 digest/);
    assert.throws(() => writeLocal(projectDir, digest, "signatures", [{ payload: 1 }] as unknown as SignatureRecord[]), /not a list of signatures/);
  });
});
