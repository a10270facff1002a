/**
 * The backup archive check without an engine: a directory stands in for the volume (listed by the same
 * script the one-shot container runs), GNU tar on this host makes the archive as the container does.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import {
  archiveManifest, archiveRoot, manifestDifferences, parseVolumeManifest, VOLUME_MANIFEST_SCRIPT,
} from "../../src/engine/archiveManifest";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "hf-manifest-"));
const data = path.join(work, "data");

const listVolume = () => parseVolumeManifest(execFileSync("sh", ["-c", VOLUME_MANIFEST_SCRIPT.replace("/data", data)], { encoding: "utf8" }));
const archive = (name: string) => {
  const file = path.join(work, name);
  execFileSync("tar", ["-C", data, "--numeric-owner", "-czf", file, "."]);
  return file;
};

describe("backup archive manifests", () => {
  fs.mkdirSync(path.join(data, "uploads", "deep"), { recursive: true });
  fs.mkdirSync(path.join(data, "empty-dir"));
  fs.writeFileSync(path.join(data, "uploads", "a.txt"), "hello");
  fs.writeFileSync(path.join(data, "uploads", "with space.txt"), "");
  fs.writeFileSync(path.join(data, "uploads", "new\nline.txt"), "x");
  fs.writeFileSync(path.join(data, "uploads", "deep", `${"long-name-".repeat(15)}.bin`), randomBytes(3000));
  fs.writeFileSync(path.join(data, "big.bin"), randomBytes(2 * 1024 * 1024 + 17));
  fs.linkSync(path.join(data, "uploads", "a.txt"), path.join(data, "hardlink.txt"));
  fs.symlinkSync("uploads/a.txt", path.join(data, "symlink"));
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it("an archive of the directory holds exactly its files, sizes and hashes (long names, hard links, odd names)", async () => {
    const volume = listVolume();
    assert.equal(volume.size, 6);
    assert.equal(volume.get("./big.bin")!.size, 2 * 1024 * 1024 + 17);
    assert.equal(volume.get("./uploads/new\nline.txt")!.size, 1);
    const archived = await archiveManifest(archive("good.tar.gz"));
    assert.deepEqual(manifestDifferences(volume, archived), []);
    assert.deepEqual([...archived.keys()].sort(), [...volume.keys()].sort());
  });

  it("a cut-short archive is refused", async () => {
    const whole = fs.readFileSync(archive("whole.tar.gz"));
    const cut = path.join(work, "cut.tar.gz");
    fs.writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    await assert.rejects(archiveManifest(cut), /unexpected end of file|cut short/);
  });

  it("a file that changed, went missing or appeared is named", async () => {
    const before = archive("before.tar.gz");
    fs.writeFileSync(path.join(data, "uploads", "a.txt"), "HELLO"); // same size, other content
    fs.writeFileSync(path.join(data, "uploads", "later.txt"), "later");
    const diffs = manifestDifferences(listVolume(), await archiveManifest(before));
    assert.ok(diffs.includes("7 files in the volume, 6 in the archive"), diffs.join("\n"));
    assert.ok(diffs.some((d) => /^\.\/uploads\/a\.txt: its content differs/.test(d)), diffs.join("\n"));
    assert.ok(diffs.includes("./uploads/later.txt is missing from the archive"), diffs.join("\n"));
  });
});

describe("an archive's root directory", () => {
  it("is read from the first entry, as archiveVolume writes it: owner and mode of the volume's top", async () => {
    const top = fs.mkdtempSync(path.join(os.tmpdir(), "hf-root-"));
    try {
      fs.writeFileSync(path.join(top, "f"), "x");
      fs.chmodSync(top, 0o750);
      fs.chownSync(top, 1000, 1000);
      const file = path.join(top, "..", `${path.basename(top)}.tar.gz`);
      execFileSync("tar", ["-C", top, "--numeric-owner", "-czf", file, "."]);
      assert.deepEqual(await archiveRoot(file), { uid: 1000, gid: 1000, mode: 0o750 });
      fs.rmSync(file);
      // another tool's archive, without "./" first: nothing to restore
      execFileSync("tar", ["-C", top, "-czf", file, "f"]);
      assert.equal(await archiveRoot(file), undefined);
      fs.rmSync(file);
    } finally {
      fs.rmSync(top, { recursive: true, force: true });
    }
  });
});
