/**
 * A backup host for tests: two rest-server processes (scripts/ensure-restic.sh builds them) in a
 * network namespace of their own, serving one data directory.
 *   - port 8000, --append-only: the `fleet` user, what backup jobs use; it can add snapshots, never
 *     delete (only its own locks);
 *   - port 8001: the `prune` user, for forget/prune.
 * Repositories are /<env>/<customer> for both users, so --private-repos (every user confined to
 * /<username>/...) does not fit: the users are kept apart by port and htpasswd file instead.
 *
 * Network: a veth to the host, <name>-h 10.240.X.1/24 on the host and eth0 10.240.X.2/24 in the
 * namespace (no default route: it answers only that LAN), so the host and containers on the host
 * engine's bridges (masqueraded to 10.240.X.1) reach it. With `attach`, a second veth (eth1) goes into
 * a bridge of another namespace, as scripts/swarm-cluster.sh plugs in its nodes, and `address` is the
 * one on that LAN.
 *
 * Root only (ip netns, veth). stop() kills the servers and keeps the namespace (the host is "down");
 * destroy() removes everything. A leftover of a crashed run with the same name is removed first.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { promisify } from "node:util";
import { resticBinDir } from "../../src/backup/toolImage";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const APPEND_PORT = 8000;
export const ADMIN_PORT = 8001;

export interface BackupHostOptions {
  /** netns name and prefix of the veth names: 1-8 of [a-z0-9], starting with a letter, e.g. "hfbk1" */
  name: string;
  /** X of 10.240.X.0/24, the LAN to the host */
  subnet: number;
  /** also plug it into `bridge` of namespace `netns` at `address` (CIDR, e.g. 10.231.0.50/24) */
  attach?: { netns: string; bridge: string; address: string };
}

export interface Credential { user: string; password: string }

export interface BackupHost {
  /** the IP backup jobs reach (the attach address, else 10.240.X.2), no port */
  address: string;
  /** 10.240.X.2: the host and the host engine's containers reach it there */
  hostAddress: string;
  /** rest:http://<address>:8000/<path>, without credentials */
  appendUrl(repoPath: string): string;
  /** rest:http://<address>:8001/<path>, without credentials */
  adminUrl(repoPath: string): string;
  fleet: Credential;
  prune: Credential;
  dataDir: string;
  /** the servers' output, kept after destroy */
  logDir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

const ip = (...args: string[]) => run("ip", args);
const quietly = (p: Promise<unknown>) => p.then(() => undefined, () => undefined);

/** pids of every process in the namespace (none when it does not exist) */
async function namespacePids(ns: string): Promise<number[]> {
  if (!fs.existsSync(`/run/netns/${ns}`)) return [];
  const { stdout } = await ip("netns", "pids", ns).catch(() => ({ stdout: "" }));
  return stdout.split(/\s+/).filter(Boolean).map(Number);
}

const alive = (pid: number) => {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state !== undefined && state !== "Z" && state !== "X";
  } catch {
    return false;
  }
};

/** TERM to every process in the namespace, KILL after 5 s; returns once none is left */
async function killNamespace(ns: string): Promise<void> {
  const pids = await namespacePids(ns);
  for (const pid of pids) quietly(Promise.resolve().then(() => process.kill(pid, "SIGTERM")));
  const deadline = Date.now() + 5000;
  while (pids.some(alive)) {
    if (Date.now() > deadline) {
      for (const pid of pids.filter(alive)) { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } }
      await sleep(200);
      break;
    }
    await sleep(100);
  }
}

/** an htpasswd line rest-server v0.14.0 accepts: {SHA} (base64 of SHA-1) or bcrypt; the passwords are random 144-bit strings */
const htpasswdLine = (c: Credential) => `${c.user}:{SHA}${createHash("sha1").update(c.password).digest("base64")}\n`;

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 1000 });
    s.once("connect", () => { s.destroy(); resolve(true); });
    s.once("error", () => resolve(false));
    s.once("timeout", () => { s.destroy(); resolve(false); });
  });
}

export async function startBackupHost(opts: BackupHostOptions): Promise<BackupHost> {
  const { name, subnet, attach } = opts;
  if (!/^[a-z][a-z0-9]{0,7}$/.test(name)) throw new Error(`backup host name '${name}': 1-8 of a-z, 0-9, starting with a letter`);
  if (!Number.isInteger(subnet) || subnet < 1 || subnet > 254) throw new Error(`backup host subnet ${subnet}: 1-254 (10.240.X.0/24)`);
  const restServer = path.join(resticBinDir(), "rest-server");
  if (!fs.existsSync(restServer)) throw new Error(`${restServer} is missing: run \`bash scripts/ensure-restic.sh\``);

  const hostVeth = `${name}-h`;
  const attachVeth = `${name}-b`;
  const hostAddress = `10.240.${subnet}.2`;
  const address = attach ? attach.address.split("/")[0]! : hostAddress;
  const dataDir = `/tmp/hfbk-${name}-data`;
  const authDir = `/tmp/hfbk-${name}-auth`;
  const logDir = `/tmp/hfbk-${name}-logs`;

  const teardown = async () => {
    await killNamespace(name);
    if (fs.existsSync(`/run/netns/${name}`)) await quietly(ip("netns", "del", name));
    // deleting the namespace deletes its veth ends and their peers; these are for a half-made one
    await quietly(ip("link", "del", hostVeth));
    if (attach) await quietly(ip("-n", attach.netns, "link", "del", attachVeth));
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(authDir, { recursive: true, force: true });
  };

  // a leftover of an earlier run with this name
  await teardown();
  const { stdout: routes } = await ip("route", "show", `10.240.${subnet}.0/24`);
  if (routes.trim()) throw new Error(`10.240.${subnet}.0/24 is already routed on this host (${routes.trim()}): pick another subnet`);

  try {
    await ip("netns", "add", name);
    await ip("-n", name, "link", "set", "lo", "up");
    await ip("link", "add", hostVeth, "type", "veth", "peer", "name", "eth0", "netns", name);
    await ip("addr", "add", `10.240.${subnet}.1/24`, "dev", hostVeth);
    await ip("link", "set", hostVeth, "up");
    await ip("-n", name, "addr", "add", `${hostAddress}/24`, "dev", "eth0");
    await ip("-n", name, "link", "set", "eth0", "up");
    if (attach) {
      await ip("-n", attach.netns, "link", "add", attachVeth, "type", "veth", "peer", "name", "eth1", "netns", name);
      await ip("-n", attach.netns, "link", "set", attachVeth, "master", attach.bridge, "up");
      await ip("-n", name, "addr", "add", attach.address, "dev", "eth1");
      await ip("-n", name, "link", "set", "eth1", "up");
    }
  } catch (err) {
    await teardown();
    throw err;
  }

  const secret = () => randomBytes(18).toString("base64url");
  const fleet: Credential = { user: "fleet", password: secret() };
  const prune: Credential = { user: "prune", password: secret() };
  fs.mkdirSync(dataDir, { mode: 0o700 });
  fs.mkdirSync(authDir, { mode: 0o700 });
  fs.mkdirSync(logDir, { recursive: true });
  fs.writeFileSync(path.join(authDir, "fleet.htpasswd"), htpasswdLine(fleet), { mode: 0o600 });
  fs.writeFileSync(path.join(authDir, "prune.htpasswd"), htpasswdLine(prune), { mode: 0o600 });
  for (const f of ["append.log", "admin.log"]) fs.writeFileSync(path.join(logDir, f), "");

  const servers = [
    { port: APPEND_PORT, log: "append.log", args: ["--append-only", "--htpasswd-file", path.join(authDir, "fleet.htpasswd")] },
    { port: ADMIN_PORT, log: "admin.log", args: ["--htpasswd-file", path.join(authDir, "prune.htpasswd")] },
  ];
  let children: ChildProcess[] = [];

  const stop = async () => {
    await killNamespace(name);
    children = [];
  };

  const start = async () => {
    if (children.some((c) => c.exitCode === null && c.signalCode === null)) return;
    children = servers.map((s) => {
      const logFd = fs.openSync(path.join(logDir, s.log), "a");
      // nsenter execs rest-server: the child's pid is the server's
      const child = spawn("nsenter", [`--net=/run/netns/${name}`, "--", restServer,
        "--path", dataDir, "--listen", `:${s.port}`, "--log", "-", ...s.args], { stdio: ["ignore", logFd, logFd] });
      fs.closeSync(logFd);
      child.unref();
      child.on("error", () => {});
      return child;
    });
    const deadline = Date.now() + 15_000;
    for (const [i, s] of servers.entries()) {
      while (!(await canConnect(hostAddress, s.port))) {
        const c = children[i]!;
        const exited = c.exitCode !== null || c.signalCode !== null;
        if (exited || Date.now() > deadline) {
          const tail = fs.readFileSync(path.join(logDir, s.log), "utf8").trim().split("\n").slice(-10).join("\n");
          await stop();
          throw new Error(`rest-server on ${hostAddress}:${s.port} did not answer${exited ? " (it exited)" : " within 15s"}; ${s.log}:\n${tail}`);
        }
        await sleep(100);
      }
    }
  };

  const url = (port: number) => (repoPath: string) => `rest:http://${address}:${port}/${repoPath.replace(/^\/+/, "")}`;
  try {
    await start();
  } catch (err) {
    await teardown();
    throw err;
  }
  return {
    address, hostAddress, appendUrl: url(APPEND_PORT), adminUrl: url(ADMIN_PORT), fleet, prune, dataDir, logDir,
    stop, start, destroy: teardown,
  };
}
