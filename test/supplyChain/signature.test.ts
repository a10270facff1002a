/**
 * Signatures and SBOMs beside an image in a real registry (Debian's docker-registry, distribution 2.8,
 * on 127.0.0.1): an image pushed by the local engine is signed by fleet, read back and verified; a
 * signature by another key, and one moved to another digest, are refused; and cosign (built by
 * scripts/ensure-cosign.sh) agrees both ways: `cosign verify --key` accepts fleet's signature and
 * refuses the others, fleet accepts a signature `cosign sign --key` made, and cosign reads fleet's SBOM.
 */
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import { generateSigningKey, signImage, verifyImage } from "../../src/supplyChain/signature";
import { OCI_MANIFEST, RegistryClient, registryScheme } from "../../src/supplyChain/ociRegistry";
import {
  attachSbom, attachSignature, attachmentConfig, attachmentTag, CYCLONEDX_JSON_MEDIA_TYPE, parseImageRef, readSbom, readSignatures,
  SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
} from "../../src/supplyChain/attachments";

const run = promisify(execFile);
const root = path.resolve(__dirname, "../..");
const engine = new Dockerode();
const BASE = "hardened-fleet/python-base:bookworm";
const REPO = "hf25-sig/app";

let work = "";
let registry: ChildProcess | undefined;
let address = "";
let client: RegistryClient;
let pushedTag = "";
let digest = "";
let cosign: string | undefined;
let cosignError: string | undefined;
const fleetKey = generateSigningKey();
const otherKey = generateSigningKey();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Debian's docker-registry, installed like the swarm cluster's when missing. */
function ensureRegistryBinary(): void {
  if (spawnSync("sh", ["-c", "command -v docker-registry"]).status === 0) return;
  const script = `log() { printf '[registry] %s\\n' "$*" >&2; }; die() { log "error: $*"; exit 1; }
    . scripts/apt-install.sh; apt_package docker-registry "docker-registry is missing"`;
  const res = spawnSync("bash", ["-c", script], { cwd: root, stdio: "inherit" });
  if (res.status !== 0) throw new Error("could not install Debian's docker-registry package");
}

async function startRegistry(): Promise<void> {
  const port = await freePort();
  address = `127.0.0.1:${port}`;
  const config = path.join(work, "registry.yml");
  fs.writeFileSync(config, [
    "version: 0.1",
    "log:", "  level: warn",
    "storage:", "  filesystem:", `    rootdirectory: ${path.join(work, "storage")}`, "  delete:", "    enabled: true",
    "http:", `  addr: ${address}`, `  secret: ${crypto.randomBytes(16).toString("hex")}`,
    "",
  ].join("\n"));
  const log = fs.openSync(path.join(work, "registry.log"), "a");
  registry = spawn("docker-registry", ["serve", config], { stdio: ["ignore", log, log] });
  fs.closeSync(log);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`http://${address}/v2/`).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (registry.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the registry on ${address} does not answer: ${fs.readFileSync(path.join(work, "registry.log"), "utf8").slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Pushes `name` through the local engine; fails on an error event in the push's progress. */
async function push(name: string): Promise<void> {
  const stream = await engine.getImage(name).push({ authconfig: { serveraddress: address } });
  const events: { error?: string }[] = await new Promise((resolve, reject) =>
    engine.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => (err ? reject(err) : resolve(out))));
  const failed = events.find((e) => e.error);
  if (failed) throw new Error(`pushing ${name}: ${failed.error}`);
}

/** A small image manifest of its own (a config, no layers) in REPO: another real digest. */
async function syntheticImage(label: string): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { Labels: { "hf25-sig": label } },
    rootfs: { type: "layers", diff_ids: [] } }));
  const configDigest = await client.putBlob(REPO, config);
  return client.putManifest(REPO, `synthetic-${label}`, {
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", size: config.length, digest: configDigest }, layers: [],
  });
}

/** Runs cosign with a private HOME, never the network (but 127.0.0.1); returns its exit status and output. */
async function runCosign(args: string[], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  const home = path.join(work, "cosign-home");
  fs.mkdirSync(home, { recursive: true });
  try {
    const { stdout, stderr } = await run(cosign!, args, {
      cwd: work, timeout: 120_000,
      // anything but 127.0.0.1 goes to a proxy that is not there: the test cannot reach out
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, TUF_ROOT: path.join(home, "tuf"),
        HTTPS_PROXY: "http://127.0.0.1:9", HTTP_PROXY: "http://127.0.0.1:9", NO_PROXY: "127.0.0.1", ...env },
    });
    assert.doesNotMatch(stdout + stderr, /TUF|sigstore\.dev|127\.0\.0\.1:9\b/, `cosign ${args[0]} went to the network`);
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: typeof e.code === "number" ? e.code : -1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` || e.message };
  }
}

/**
 * `cosign verify --key` offline: an empty trusted root (no CAs, logs or timestamp authorities) keeps
 * it from fetching Sigstore's public one over TUF, which it otherwise tries first (and only warns).
 */
async function cosignVerify(pubFile: string, ref: string) {
  const trustedRoot = path.join(work, "empty-trusted-root.json");
  fs.writeFileSync(trustedRoot, JSON.stringify({ mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] }));
  const res = await runCosign(["verify", "--key", pubFile, "--insecure-ignore-tlog=true", "--allow-http-registry=true",
    "--trusted-root", trustedRoot, ref]);
  assert.doesNotMatch(res.output, /TUF|sigstore\.dev|127\.0\.0\.1:9\b/, "cosign verify went to the network");
  return res;
}

describe("signatures and SBOMs in a real registry", { timeout: 20 * 60_000 }, () => {
  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "hf25-sig-"));
    // cosign builds while the registry starts and the image is pushed
    const building = run("bash", [path.join(root, "scripts/ensure-cosign.sh")], { cwd: root, timeout: 15 * 60_000, maxBuffer: 1 << 24 })
      .then(({ stdout }) => {
        cosign = path.join(stdout.trim().split("\n").pop()!, "cosign");
      }, (err: { stderr?: string; message: string }) => {
        cosignError = (err.stderr ?? err.message).split("\n").slice(-15).join("\n");
      });
    ensureRegistryBinary();
    await startRegistry();
    client = new RegistryClient({ address, scheme: await registryScheme(engine, address) });
    pushedTag = `${address}/${REPO}:1`;
    await engine.getImage(BASE).tag({ repo: `${address}/${REPO}`, tag: "1" });
    await push(pushedTag);
    digest = (await client.getManifest(REPO, "1")).digest;
    fs.writeFileSync(path.join(work, "fleet.pub"), fleetKey.publicKeyPem);
    fs.writeFileSync(path.join(work, "other.pub"), otherKey.publicKeyPem);
    await building;
  });

  after(async () => {
    await engine.getImage(pushedTag || `${address}/${REPO}:1`).remove().catch(() => {});
    if (registry && registry.exitCode === null) {
      const exited = new Promise((r) => registry!.once("exit", r));
      registry.kill("SIGTERM");
      await exited;
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("the engine talks plain HTTP to a loopback registry, so fleet does", async () => {
    assert.equal(await registryScheme(engine, address), "http");
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    const manifest = await client.getManifest(REPO, digest);
    assert.equal(manifest.digest, digest);
    assert.match(manifest.mediaType, /^application\/vnd\.(docker\.distribution\.manifest\.v2|oci\.image\.manifest\.v1)\+json$/);
    assert.equal(await client.findManifest(REPO, attachmentTag(digest, "sig")), undefined);
    assert.deepEqual(await readSignatures(client, REPO, digest), []);
  });

  it("fleet signs the pushed digest: cosign's layout in the registry, read back and verified", async () => {
    const { registry: reg, repo } = parseImageRef(`${address}/${REPO}@${digest}`);
    assert.equal(reg, address);
    assert.equal(repo, REPO);
    const before = verifyImage(fleetKey.publicKeyPem, digest, await readSignatures(client, REPO, digest));
    assert.ok(!before.ok && before.reason === "unsigned");

    const record = signImage(fleetKey.privateKeyPem, `${address}/${REPO}`, digest);
    await attachSignature(client, REPO, digest, record);
    await attachSignature(client, REPO, digest, record); // the same signature again: kept once
    const sig = await client.getManifest(REPO, attachmentTag(digest, "sig"));
    assert.equal(sig.mediaType, OCI_MANIFEST);
    const manifest = JSON.parse(sig.body.toString());
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.layers[0].mediaType, SIMPLE_SIGNING_MEDIA_TYPE);
    assert.equal(manifest.layers[0].annotations[SIGNATURE_ANNOTATION], record.signature);
    const records = await readSignatures(client, REPO, digest);
    assert.deepEqual(records, [record]);
    assert.equal(verifyImage(fleetKey.publicKeyPem, digest, records).ok, true);
  });

  it("a digest signed only by another key is refused: other-key", async () => {
    const foreign = await syntheticImage("foreign");
    await attachSignature(client, REPO, foreign, signImage(otherKey.privateKeyPem, `${address}/${REPO}`, foreign));
    const result = verifyImage(fleetKey.publicKeyPem, foreign, await readSignatures(client, REPO, foreign));
    assert.ok(!result.ok && result.reason === "other-key", JSON.stringify(result));
    assert.ok(result.message.includes(foreign));
    assert.equal(verifyImage(otherKey.publicKeyPem, foreign, await readSignatures(client, REPO, foreign)).ok, true);
  });

  it("a signature moved to another digest is refused: wrong-digest, naming the digest it signed", async () => {
    const moved = await syntheticImage("moved");
    const sig = await client.getManifest(REPO, attachmentTag(digest, "sig"));
    await client.putManifest(REPO, attachmentTag(moved, "sig"), sig.body);
    const result = verifyImage(fleetKey.publicKeyPem, moved, await readSignatures(client, REPO, moved));
    assert.ok(!result.ok && result.reason === "wrong-digest", JSON.stringify(result));
    assert.ok(result.message.includes(moved) && result.message.includes(`its signature names ${digest}`));
  });

  it("a second signature is added next to the first", async () => {
    await attachSignature(client, REPO, digest, signImage(otherKey.privateKeyPem, `${address}/${REPO}`, digest));
    const records = await readSignatures(client, REPO, digest);
    assert.equal(records.length, 2);
    assert.equal(verifyImage(fleetKey.publicKeyPem, digest, records).ok, true);
    assert.equal(verifyImage(otherKey.publicKeyPem, digest, records).ok, true);
    const manifest = JSON.parse((await client.getManifest(REPO, attachmentTag(digest, "sig"))).body.toString());
    const config = await client.getBlob(REPO, manifest.config.digest);
    assert.deepEqual(config, attachmentConfig(manifest.layers.map((l: { digest: string }) => l.digest)));
  });

  it("the SBOM beside the image: attach, read back, replace", async () => {
    assert.equal(await readSbom(client, REPO, digest), undefined);
    const sbom = { bomFormat: "CycloneDX", specVersion: "1.5", components: [{ type: "library", name: "openssl", version: "3.0.15" }] };
    await attachSbom(client, REPO, digest, sbom);
    assert.deepEqual(await readSbom(client, REPO, digest), { mediaType: CYCLONEDX_JSON_MEDIA_TYPE, sbom });
    const manifest = JSON.parse((await client.getManifest(REPO, attachmentTag(digest, "sbom"))).body.toString());
    assert.deepEqual(manifest.layers.map((l: { mediaType: string }) => l.mediaType), [CYCLONEDX_JSON_MEDIA_TYPE]);
    const next = { ...sbom, components: [] };
    await attachSbom(client, REPO, digest, next);
    assert.deepEqual((await readSbom(client, REPO, digest))?.sbom, next);
  });

  describe("cosign interoperability", () => {
    // the set-up builds cosign (scripts/test.sh runs scripts/ensure-cosign.sh): its absence is a failure, not a skip
    const skip = () => (cosign ? false : `cosign could not be built: ${cosignError ?? "unknown"}`);

    it("cosign verify --key accepts fleet's signature and refuses another key's and a moved one", async () => {
      if (skip()) assert.fail(String(skip()));
      const ref = `${address}/${REPO}@${digest}`;
      const ok = await cosignVerify(path.join(work, "fleet.pub"), ref);
      assert.equal(ok.code, 0, ok.output);
      assert.match(ok.output, new RegExp(digest));
      // `foreign` carries only the other key's signature; `moved` carries fleet's signature of another digest
      const foreign = (await client.getManifest(REPO, "synthetic-foreign")).digest;
      const refused = await cosignVerify(path.join(work, "fleet.pub"), `${address}/${REPO}@${foreign}`);
      assert.notEqual(refused.code, 0, refused.output);
      assert.match(refused.output, /no matching signatures: invalid signature/);
      const moved = (await client.getManifest(REPO, "synthetic-moved")).digest;
      const movedResult = await cosignVerify(path.join(work, "fleet.pub"), `${address}/${REPO}@${moved}`);
      assert.notEqual(movedResult.code, 0, movedResult.output);
      assert.match(movedResult.output, new RegExp(`no matching signatures: invalid or missing digest in claim: ${digest}`));
    });

    it("fleet verifies a signature cosign made with an imported PEM key, offline; cosign's layout is fleet's", async () => {
      if (skip()) assert.fail(String(skip()));
      const cosignKey = generateSigningKey();
      fs.writeFileSync(path.join(work, "import.pem"), cosignKey.privateKeyPem, { mode: 0o600 });
      const env = { COSIGN_PASSWORD: crypto.randomBytes(12).toString("hex") };
      const imported = await runCosign(["import-key-pair", "--key", "import.pem", "--output-key-prefix", "imported", "-y"], env);
      assert.equal(imported.code, 0, imported.output);
      const target = await syntheticImage("cosign");
      const ref = `${address}/${REPO}@${target}`;
      const signed = await runCosign(["sign", "--key", "imported.key", "--tlog-upload=false", "--allow-http-registry=true", "-y", ref], env);
      assert.equal(signed.code, 0, signed.output);
      const records = await readSignatures(client, REPO, target);
      assert.equal(records.length, 1);
      const result = verifyImage(cosignKey.publicKeyPem, target, records);
      assert.ok(result.ok, JSON.stringify(result));
      assert.equal(result.dockerReference, `${address}/${REPO}`);
      assert.ok(!verifyImage(fleetKey.publicKeyPem, target, records).ok);
      // what cosign wrote is what fleet writes: OCI manifest, simple-signing layer, the same config
      const sig = await client.getManifest(REPO, attachmentTag(target, "sig"));
      const manifest = JSON.parse(sig.body.toString());
      assert.equal(sig.mediaType, OCI_MANIFEST);
      assert.equal(manifest.config.mediaType, "application/vnd.oci.image.config.v1+json");
      assert.equal(manifest.layers[0].mediaType, SIMPLE_SIGNING_MEDIA_TYPE);
      assert.ok(manifest.layers[0].annotations[SIGNATURE_ANNOTATION]);
      assert.deepEqual(JSON.parse((await client.getBlob(REPO, manifest.config.digest)).toString()),
        JSON.parse(attachmentConfig([manifest.layers[0].digest]).toString()));
      // cosign adds its signature next to fleet's, and both verify
      const both = await runCosign(["sign", "--key", "imported.key", "--tlog-upload=false", "--allow-http-registry=true", "-y",
        `${address}/${REPO}@${digest}`], env);
      assert.equal(both.code, 0, both.output);
      const all = await readSignatures(client, REPO, digest);
      assert.equal(all.length, 3);
      assert.equal(verifyImage(cosignKey.publicKeyPem, digest, all).ok, true);
      assert.equal(verifyImage(fleetKey.publicKeyPem, digest, all).ok, true);
      const fleetSide = await cosignVerify(path.join(work, "fleet.pub"), `${address}/${REPO}@${digest}`);
      assert.equal(fleetSide.code, 0, fleetSide.output);
    });

    it("cosign download sbom reads the SBOM fleet attached", async () => {
      if (skip()) assert.fail(String(skip()));
      const res = await runCosign(["download", "sbom", "--allow-http-registry=true", `${address}/${REPO}@${digest}`]);
      assert.equal(res.code, 0, res.output);
      assert.deepEqual(JSON.parse(res.output.slice(res.output.indexOf("{"), res.output.lastIndexOf("}") + 1)), (await readSbom(client, REPO, digest))?.sbom);
    });
  });
});

describe("registry credentials: basic auth and the bearer-token challenge (a registry stand-in on 127.0.0.1)", () => {
  const blob = Buffer.from("hello");
  const blobDigest = `sha256:${crypto.createHash("sha256").update(blob).digest("hex")}`;
  const basic = `Basic ${Buffer.from("ci:s3cret").toString("base64")}`;
  let server: http.Server;
  let base = "";
  const seen: string[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      const url = new URL(req.url!, base);
      seen.push(`${req.method} ${url.pathname}${url.search} ${req.headers.authorization?.split(" ")[0] ?? "-"}`);
      if (url.pathname === "/token") {
        if (req.headers.authorization !== basic) return res.writeHead(401).end();
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify({ token: `tok-${url.searchParams.get("scope")}` }));
      }
      if (url.pathname.startsWith("/v2/basic/")) {
        if (req.headers.authorization !== basic) return res.writeHead(401, { "www-authenticate": 'Basic realm="r"' }).end();
        res.writeHead(200, { "content-type": OCI_MANIFEST });
        return res.end("{}");
      }
      const scope = "repository:a/b:pull";
      if (req.headers.authorization !== `Bearer tok-${scope}`) {
        res.writeHead(401, { "www-authenticate": `Bearer realm="${base}/token",service="stand-in",scope="${scope}"` });
        return res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }));
      }
      if (url.pathname === "/v2/a/b/blobs/" + blobDigest) {
        return res.writeHead(307, { location: `${base}/storage/blob` }).end();
      }
      if (url.pathname === "/storage/blob") return res.writeHead(200).end(blob);
      return res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it("gets a token from the realm with the account's credentials, then follows the storage redirect", async () => {
    const c = new RegistryClient({ address: base.slice("http://".length), scheme: "http", auth: { username: "ci", password: "s3cret" } });
    assert.deepEqual(await c.getBlob("a/b", blobDigest), blob);
    assert.deepEqual(await c.getBlob("a/b", blobDigest), blob);
    // one challenge, one token, then the token is reused
    assert.equal(seen.filter((s) => s.startsWith("GET /token")).length, 1);
    assert.ok(seen.includes(`GET /token?service=stand-in&scope=repository%3Aa%2Fb%3Apull Basic`), seen.join("\n"));
  });

  it("without credentials the token service refuses, and the error says so", async () => {
    const c = new RegistryClient({ address: base.slice("http://".length), scheme: "http" });
    await assert.rejects(c.getBlob("a/b", blobDigest), /token service .* answered 401 \(no credentials given\)/);
  });

  it("a Basic challenge is answered with the account", async () => {
    const c = new RegistryClient({ address: base.slice("http://".length), scheme: "http", auth: { username: "ci", password: "s3cret" } });
    assert.equal((await c.getManifest("basic/x", "1")).body.toString(), "{}");
    const none = new RegistryClient({ address: base.slice("http://".length), scheme: "http" });
    await assert.rejects(none.getManifest("basic/x", "1"), /refused GET \/v2\/basic\/x\/manifests\/1 \(401\): it needs credentials/);
  });
});
