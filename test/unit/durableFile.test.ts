/**
 * Durable writes of the files the fleet keeps (stack files, environment files): temp file written,
 * fsynced, renamed into place, then the directory fsynced, in that order, seen through fs spies.
 */
import assert from "node:assert/strict";
import * as os from "node:os";
import * as path from "node:path";
import { after, afterEach, describe, it, mock } from "node:test";
import { ensurePrivateDirectory, writeFileDurable } from "../../src/config/durableWrite";
import { writeCustomerStackFile, writeFileAtomic } from "../../src/project/stackFiles";

// the module object itself (not an import wrapper): what the code under test calls through
import fs = require("node:fs");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-durable-"));

/** Records write, fsync and rename calls, naming each fd by the path it was opened with. */
function spy(): string[] {
  const events: string[] = [];
  const fds = new Map<number, string>();
  const name = (p: fs.PathLike) => path.relative(dir, path.resolve(String(p))) || ".";
  const open = fs.openSync;
  mock.method(fs, "openSync", (p: fs.PathLike, ...rest: unknown[]) => {
    const fd = (open as (...a: unknown[]) => number)(p, ...rest);
    fds.set(fd, name(p));
    return fd;
  });
  const write = fs.writeSync;
  mock.method(fs, "writeSync", (fd: number, ...rest: unknown[]) => {
    if (fds.has(fd)) events.push(`write ${fds.get(fd)}`);
    return (write as (...a: unknown[]) => number)(fd, ...rest);
  });
  const writeFile = fs.writeFileSync;
  mock.method(fs, "writeFileSync", (p: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    events.push(`write ${typeof p === "number" ? fds.get(p) : name(p as fs.PathLike)}`);
    return (writeFile as (...a: unknown[]) => void)(p, ...rest);
  });
  const fsync = fs.fsyncSync;
  mock.method(fs, "fsyncSync", (fd: number) => {
    events.push(`fsync ${fds.get(fd) ?? "?"}`);
    return fsync(fd);
  });
  const rename = fs.renameSync;
  mock.method(fs, "renameSync", (from: fs.PathLike, to: fs.PathLike) => {
    events.push(`rename ${name(from)} -> ${name(to)}`);
    return rename(from, to);
  });
  return events;
}

/** Collapses repeated writes of one file into one entry: the order is what matters. */
const squash = (events: string[]) => events.filter((e, i) => !(e.startsWith("write ") && events[i - 1] === e));

describe("durable file writes", () => {
  afterEach(() => mock.restoreAll());
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("writes a temp file, fsyncs it, renames it into place, then fsyncs the directory", () => {
    const file = path.join(dir, "Pulumi.prod.yaml");
    fs.writeFileSync(file, "old\n", { mode: 0o640 });
    const events = spy();
    writeFileDurable(file, "new\n");
    mock.restoreAll();
    const tmp = `.Pulumi.prod.yaml.tmp-${process.pid}`;
    assert.deepEqual(squash(events), [`write ${tmp}`, `fsync ${tmp}`, `rename ${tmp} -> Pulumi.prod.yaml`, "fsync ."]);
    assert.equal(fs.readFileSync(file, "utf8"), "new\n");
    assert.equal(fs.statSync(file).mode & 0o777, 0o640, "the old file's mode is kept");
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes(".tmp-")), []);
  });

  it("customer stack files and writeFileAtomic go the same way", () => {
    const events = spy();
    const file = writeCustomerStackFile(dir, { id: "acme", environment: "staging", plan: "starter" });
    writeFileAtomic(path.join(dir, "Pulumi.swarm.yaml"), "config: {}\n");
    mock.restoreAll();
    const tmp = `.${path.basename(file)}.tmp-${process.pid}`;
    const tmp2 = `.Pulumi.swarm.yaml.tmp-${process.pid}`;
    assert.deepEqual(squash(events), [
      `write ${tmp}`, `fsync ${tmp}`, `rename ${tmp} -> ${path.basename(file)}`, "fsync .",
      `write ${tmp2}`, `fsync ${tmp2}`, `rename ${tmp2} -> Pulumi.swarm.yaml`, "fsync .",
    ]);
    assert.match(fs.readFileSync(file, "utf8"), /plan: starter/);
  });

  it("a private directory: created 0700 whatever the umask, a looser one tightened, another user's refused", () => {
    const umask = process.umask(0);
    try {
      const made = path.join(dir, "backups", "a");
      assert.deepEqual(ensurePrivateDirectory(made), {});
      assert.equal(fs.statSync(made).mode & 0o777, 0o700);
    } finally {
      process.umask(umask);
    }
    const loose = path.join(dir, "loose");
    fs.mkdirSync(loose);
    fs.chmodSync(loose, 0o755);
    assert.deepEqual(ensurePrivateDirectory(loose), { tightenedFrom: 0o755 });
    assert.equal(fs.statSync(loose).mode & 0o777, 0o700);
    if (process.getuid?.() === 0) {
      const foreign = path.join(dir, "foreign");
      fs.mkdirSync(foreign, { mode: 0o700 });
      fs.chownSync(foreign, 4321, 4321);
      assert.throws(() => ensurePrivateDirectory(foreign), /foreign belongs to uid 4321, not to this user \(uid 0\).*run 'chown 0 .*foreign && chmod 700/);
    }
  });

  it("a failed write leaves the old file and no temp file", () => {
    const file = path.join(dir, "Pulumi.keep.yaml");
    fs.writeFileSync(file, "old\n");
    mock.method(fs, "fsyncSync", () => { throw Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" }); });
    assert.throws(() => writeFileDurable(file, "new\n"), /EIO/);
    mock.restoreAll();
    assert.equal(fs.readFileSync(file, "utf8"), "old\n");
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes(".tmp-")), []);
  });
});
