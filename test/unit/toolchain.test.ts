/** The toolchain's pins and how it is found: versions agree, nothing is built by surprise. */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { findToolchain, parseLocate, toolchainRoot } from "../../src/pulumi/toolchain";
import { projectDir } from "../support/fixtures";

function versions(): Record<string, string> {
  const text = fs.readFileSync(path.join(projectDir, "toolchain", "versions.env"), "utf8");
  return Object.fromEntries(text.split("\n").filter((l) => /^[A-Z_0-9]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}
const pkg = JSON.parse(fs.readFileSync(path.join(projectDir, "package.json"), "utf8"));

/** Runs toolchain/locate.sh with an empty cache and PATH holding `fakeBin` (if any) and bash's tools. */
function locateWith(fakeBin?: string) {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "hf-tc-cache-"));
  try {
    const started = Date.now();
    const r = spawnSync("bash", [path.join(projectDir, "toolchain", "locate.sh")], {
      encoding: "utf8",
      env: { HOME: os.homedir(), HARDENED_FLEET_CACHE: cache, PATH: [fakeBin, "/usr/local/bin", "/usr/bin", "/bin"].filter(Boolean).join(":") },
    });
    return { ...r, ms: Date.now() - started };
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
}

/** A fake `pulumi` of the given version whose `plugin ls` lists the pinned plugins. */
function fakePulumi(version: string): string {
  const v = versions();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-fake-pulumi-"));
  fs.writeFileSync(path.join(dir, "pulumi"), `#!/bin/sh
case "$1" in
version) echo v${version} ;;
plugin) printf 'NAME    KIND      VERSION  SIZE   INSTALLED  LAST USED\\ndocker  resource  ${v.DOCKER_PLUGIN_VERSION}    83 MB  now        now\\nrandom  resource  ${v.RANDOM_PLUGIN_VERSION}   70 MB  now        now\\n' ;;
esac
`, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "pulumi-language-nodejs"), "#!/bin/sh\necho v" + version + "\n", { mode: 0o755 });
  return dir;
}

describe("toolchain", () => {
  it("pins the npm SDKs to the versions of the CLI and plugins it builds", () => {
    const v = versions();
    assert.equal(v.DOCKER_PLUGIN_VERSION, "5.0.0");
    assert.equal(v.RANDOM_PLUGIN_VERSION, "4.21.1");
    const want = { "@pulumi/pulumi": v.PULUMI_VERSION, "@pulumi/docker": v.DOCKER_PLUGIN_VERSION, "@pulumi/random": v.RANDOM_PLUGIN_VERSION };
    for (const [name, version] of Object.entries(want)) {
      assert.equal(pkg.dependencies[name], version, `package.json ${name}`);
      const installed = JSON.parse(fs.readFileSync(path.join(projectDir, "node_modules", name, "package.json"), "utf8")).version;
      assert.equal(installed, version, `node_modules ${name}`);
    }
  });

  it("runs on the Node.js it declares (24), with matching type definitions", () => {
    assert.equal(pkg.engines.node, ">=24");
    assert.ok(Number(process.versions.node.split(".")[0]) >= 24, `running on node ${process.version}`);
    assert.match(pkg.devDependencies["@types/node"], /^24\./);
    // @pulumi/pulumi's own requirement is met by what we declare
    const sdk = JSON.parse(fs.readFileSync(path.join(projectDir, "node_modules", "@pulumi", "pulumi", "package.json"), "utf8"));
    assert.match(sdk.engines?.node ?? ">=22", /^>=(1\d|2[0-4])\b/);
  });

  it("carries no language host or provider code of its own", () => {
    // the only Go in the repository is the tests' vulnerability-database writer (trivy-db's format), which has nothing of Pulumi's
    const goFiles = execFileSync("git", ["-C", projectDir, "ls-files", "*.go", "**/go.mod"], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
    for (const file of goFiles) {
      assert.match(file, /^test\/support\/trivy-fixture-db\//, `${file}: Go code outside the test fixture writer`);
      assert.doesNotMatch(fs.readFileSync(path.join(projectDir, file), "utf8"), /github\.com\/pulumi\//, `${file} uses Pulumi's Go code`);
    }
    assert.equal(fs.existsSync(path.join(projectDir, "scripts", "toolchain")), false);
  });

  it("finds its own checkout from the code's location", () => {
    assert.equal(toolchainRoot(), projectDir);
  });

  it("fails at once, naming the build command, when nothing is built", () => {
    const r = locateWith();
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /is not built: run `npm run toolchain`/);
    assert.ok(r.ms < 5000, `took ${r.ms} ms`);
  });

  it("uses a pulumi on PATH of the pinned version or newer, not an older one", () => {
    const pinned = versions().PULUMI_VERSION!;
    const [maj, min, pat] = pinned.split(".").map(Number) as [number, number, number];
    for (const [version, used] of [[pinned, true], [`${maj}.${min + 1}.0`, true], [`${maj + 1}.0.0`, true], [`${maj}.${min - 1}.${pat}`, false]] as const) {
      const dir = fakePulumi(version);
      try {
        const r = locateWith(dir);
        if (used) {
          assert.equal(r.status, 0, `${version}: ${r.stderr}`);
          assert.deepEqual(parseLocate(r.stdout), { source: "system", bin: dir, home: undefined });
        } else {
          assert.equal(r.status, 3, `${version} must not be used`);
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it("uses HARDENED_FLEET_PULUMI_BIN as is, with the caller's PULUMI_HOME, without looking for a checkout", () => {
    assert.deepEqual(findToolchain({ HARDENED_FLEET_PULUMI_BIN: "/opt/pulumi/bin", PULUMI_HOME: "/srv/pulumi-home" }),
      { source: "override", bin: "/opt/pulumi/bin", home: "/srv/pulumi-home" });
  });

  it("parses locate.sh output", () => {
    assert.deepEqual(parseLocate("source=built\nbin=/c/bin\nhome=/p/.fleet/pulumi-home\n"), { source: "built", bin: "/c/bin", home: "/p/.fleet/pulumi-home" });
    assert.throws(() => parseLocate("nothing\n"), /printed no bin directory/);
  });
});
