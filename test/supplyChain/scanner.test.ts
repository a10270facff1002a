/**
 * The vulnerability scanner on the real Docker engine: trivy (scripts/ensure-trivy.sh) reads images
 * from the engine and scans them offline against the fixture database (test/support/trivyFixture.ts),
 * so its own matching of Debian packages runs: by source package and release, in the dpkg status
 * file of a Debian image and in the status.d/ files of an image without dpkg (distroless layout).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { buildImage } from "../../src/engine/build";
import { databaseDir, databaseStatus } from "../../src/supplyChain/database";
import { scanImage, sbomOf } from "../../src/supplyChain/scanner";
import { engine, removeQuietly } from "../support/engine";
import { buildFixtureDatabase, FIXTURE_ADVISORY } from "../support/trivyFixture";

const BASE = "hardened-fleet/python-base:bookworm";
const STATUSD = "hf25-scan-fixture:statusd";
const NO_DEBIAN_VERSION = "hf25-scan-fixture:no-debian-version";

/** `cmd` of `image`, as text (a one-shot container, removed after). */
async function catIn(image: string, file: string): Promise<string> {
  const name = `hf25-scan-cat-${process.pid}`;
  await removeQuietly({ containers: [name] });
  const c = await engine.createContainer({ name, Image: image, Entrypoint: ["cat", file], HostConfig: { AutoRemove: false } });
  try {
    await c.start();
    await c.wait();
    const logs = (await c.logs({ stdout: true, stderr: false, follow: false })) as Buffer;
    // a non-tty container's output comes in frames: 8-byte header, then the payload
    const parts: Buffer[] = [];
    for (let at = 0; at + 8 <= logs.length;) {
      const size = logs.readUInt32BE(at + 4);
      parts.push(logs.subarray(at + 8, at + 8 + size));
      at += 8 + size;
    }
    return Buffer.concat(parts).toString("utf8");
  } finally {
    await c.remove({ force: true }).catch(() => {});
  }
}

function timed<T>(label: string, p: Promise<T>): Promise<T> {
  const t0 = Date.now();
  return p.finally(() => console.log(`# ${label}: ${((Date.now() - t0) / 1000).toFixed(1)}s`));
}

describe("trivy on the real engine, offline, with the fixture database", () => {
  let tmp: string;
  let cacheDir: string;
  let zlibStanza: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hf25-scan-"));
    cacheDir = path.join(tmp, "cache");
    await timed("fixture database", buildFixtureDatabase(cacheDir));

    // an image from scratch with the Debian package metadata as distroless keeps it: one file per
    // package under /var/lib/dpkg/status.d/, /etc/debian_version (trivy detects Debian and its
    // release by it alone) and /etc/os-release; no dpkg, no status file
    const status = await catIn(BASE, "/var/lib/dpkg/status");
    zlibStanza = status.split(/\n\n+/).find((s) => /^Package: zlib1g$/m.test(s))!;
    assert.ok(zlibStanza, `no zlib1g in ${BASE}'s dpkg status`);
    const ctx = path.join(tmp, "statusd");
    fs.mkdirSync(ctx);
    fs.writeFileSync(path.join(ctx, "os-release"), await catIn(BASE, "/etc/os-release"));
    fs.writeFileSync(path.join(ctx, "debian_version"), await catIn(BASE, "/etc/debian_version"));
    fs.writeFileSync(path.join(ctx, "zlib1g"), `${zlibStanza.trim()}\n`);
    fs.writeFileSync(path.join(ctx, "Dockerfile"), [
      "FROM scratch",
      "COPY os-release /etc/os-release",
      "COPY debian_version /etc/debian_version",
      "COPY zlib1g /var/lib/dpkg/status.d/zlib1g",
      "",
    ].join("\n"));
    await timed("status.d image", buildImage(engine, ctx, path.join(ctx, "Dockerfile"), STATUSD));
    fs.writeFileSync(path.join(ctx, "Dockerfile.nodv"), "FROM scratch\nCOPY os-release /etc/os-release\nCOPY zlib1g /var/lib/dpkg/status.d/zlib1g\n");
    await buildImage(engine, ctx, path.join(ctx, "Dockerfile.nodv"), NO_DEBIAN_VERSION);
  });

  after(async () => {
    await removeQuietly({ images: [STATUSD, NO_DEBIAN_VERSION] });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("the fixture database is trivy's format, schema 2, as of now", () => {
    const s = databaseStatus(cacheDir);
    assert.equal(s.present, true, s.problem);
    assert.ok(s.updatedAt && Math.abs(Date.now() - s.updatedAt.getTime()) < 10 * 60_000, String(s.updatedAt));
    assert.ok(s.nextUpdate && s.nextUpdate > s.updatedAt!);
  });

  it(`finds exactly ${FIXTURE_ADVISORY.id} on zlib1g, CRITICAL, in ${BASE} (dpkg status file)`, async () => {
    const version = /^Version: (.+)$/m.exec(zlibStanza)![1];
    const findings = await timed("scan of the base", scanImage(BASE, { cacheDir }));
    assert.deepEqual(findings.map((f) => ({ id: f.id, package: f.package, installedVersion: f.installedVersion, severity: f.severity, status: f.status })), [
      { id: FIXTURE_ADVISORY.id, package: FIXTURE_ADVISORY.package, installedVersion: version, severity: FIXTURE_ADVISORY.severity, status: FIXTURE_ADVISORY.status },
    ]);
    assert.equal(findings[0]!.fixedVersion, undefined);
    assert.match(findings[0]!.title ?? "", /MiniZip in zlib/);
  });

  it("finds it in an image without dpkg, from /var/lib/dpkg/status.d/", async () => {
    const findings = await timed("scan of the status.d image", scanImage(STATUSD, { cacheDir }));
    assert.deepEqual(findings.map((f) => `${f.id} ${f.package} ${f.severity}`), [`${FIXTURE_ADVISORY.id} ${FIXTURE_ADVISORY.package} ${FIXTURE_ADVISORY.severity}`]);
  });

  it("without /etc/debian_version trivy sees no Debian and finds nothing (a runtime image must keep that file)", async () => {
    assert.deepEqual(await scanImage(NO_DEBIAN_VERSION, { cacheDir }), []);
  });

  it("without a database (none, or metadata.json missing) the error says so and names supplyChain.database", async () => {
    const empty = path.join(tmp, "empty");
    fs.mkdirSync(empty);
    await assert.rejects(scanImage(BASE, { cacheDir: empty }),
      /cannot scan hardened-fleet\/python-base:bookworm for vulnerabilities: no vulnerability database at .*empty\/db\/trivy\.db; provide one with supplyChain\.database/);
    const half = path.join(tmp, "half");
    fs.mkdirSync(path.join(half, "db"), { recursive: true });
    fs.copyFileSync(path.join(cacheDir, "db", "trivy.db"), path.join(half, "db", "trivy.db"));
    await assert.rejects(scanImage(BASE, { cacheDir: half }), /metadata\.json is missing .*supplyChain\.database/);
  });

  it("trivy's own failure comes back with its stderr: an image the engine does not have", async () => {
    await assert.rejects(scanImage("hf25-scan-fixture:absent", { cacheDir }), (err: Error) => {
      assert.match(err.message, /^trivy image failed \(exit status 1\):\n/);
      assert.match(err.message, /hf25-scan-fixture:absent/);
      return true;
    });
  });

  it("a provided db.tar.gz is unpacked into the cache under its sha256, once, and scans the same", async () => {
    const tarball = path.join(tmp, "db.tar.gz");
    const { execFileSync } = await import("node:child_process");
    execFileSync("tar", ["-czf", tarball, "-C", path.join(cacheDir, "db"), "trivy.db", "metadata.json"]);
    const env = { ...process.env, HARDENED_FLEET_CACHE: path.join(tmp, "fleet-cache") };
    const dir = databaseDir(tarball, env);
    assert.match(dir, /fleet-cache\/trivy-db-provided\/[0-9a-f]{32}$/);
    assert.equal(databaseStatus(dir).present, true);
    const mtime = fs.statSync(path.join(dir, "db", "trivy.db")).mtimeMs;
    assert.equal(databaseDir(tarball, env), dir);
    assert.equal(fs.statSync(path.join(dir, "db", "trivy.db")).mtimeMs, mtime, "unpacked again");
    // a directory setting, or its db/ directory, is used where it is
    assert.equal(databaseDir(cacheDir, env), cacheDir);
    assert.equal(databaseDir(path.join(cacheDir, "db"), env), cacheDir);
    assert.equal(databaseDir(undefined, env), path.join(tmp, "fleet-cache", "trivy-db"));
    assert.throws(() => databaseDir(path.join(tmp, "nowhere"), env), /supplyChain\.database: .*nowhere does not exist/);
    const findings = await timed("scan with the unpacked database", scanImage(STATUSD, { cacheDir: dir }));
    assert.deepEqual(findings.map((f) => f.id), [FIXTURE_ADVISORY.id]);
  });

  it("the SBOM is CycloneDX JSON listing the base's packages (zlib1g, python3.11) and no vulnerabilities", async () => {
    const bom = await timed("SBOM of the base", sbomOf(BASE, { cacheDir: path.join(tmp, "sbom-cache") }));
    assert.equal(bom.bomFormat, "CycloneDX");
    assert.match(String(bom.specVersion), /^1\.\d+$/);
    const components = bom.components as { name: string; version?: string; purl?: string }[];
    const names = new Set(components.map((c) => c.name));
    for (const name of ["zlib1g", "python3.11"]) assert.ok(names.has(name), `${name} not among ${components.length} components`);
    const zlib = components.find((c) => c.name === "zlib1g")!;
    assert.match(zlib.purl ?? "", /^pkg:deb\/debian\/zlib1g@1\.2\.13\.dfsg-1\?arch=amd64&distro=debian-12\.\d+&epoch=1$/);
    assert.ok(!Array.isArray(bom.vulnerabilities) || (bom.vulnerabilities as unknown[]).length === 0, "the SBOM carries vulnerabilities");
  });
});
