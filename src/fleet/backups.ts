/**
 * Backups of customers' data volumes with restic (docs/backups.md), on the engine that holds each
 * volume (DeployTarget.dataEngine: the host, or the customer's swarm node):
 *  - backup: a consistent snapshot: the customer's containers are paused (cgroup freezer) while restic
 *    reads its volume, so a database is captured as after a crash at that instant, which SQLite and
 *    every journaling store recover from; requests wait in the kernel's queue meanwhile, none is lost;
 *  - restore: the snapshot into a scratch volume first, checked, then a safety snapshot of the current
 *    data, then the data swapped in while the customer is paused, and the customer restarted on it;
 *  - drill: each customer's latest snapshot restored into a scratch volume and checked, and the
 *    customer's own image started on it without a network until its healthcheck passes;
 *  - prune: the retention policy, with a credential fleet's host does not keep (the repository is
 *    append-only for it).
 * Every result is recorded (src/backup/records.ts).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type Dockerode from "dockerode";
import { BACKUP_IMAGE, ensureToolImage } from "../backup/toolImage";
import { appendRecord, latestByCustomer, readRecords, type BackupRecord } from "../backup/records";
import { customerRepository, describeRepository, parseRepository, type Repository } from "../backup/repository";
import { hardened, LABEL_BACKUP_OF, lastLines, ownedBy, prepareJob, RESTIC_EXIT, runContainer, sweepJobs, type JobMount, type JobSecrets, type PreparedJob } from "../backup/restic";
import { forgetArgs, keptByPolicy } from "../backup/retention";
import { isDue } from "../backup/schedule";
import { parseBackupSummary, parseLs, parseSnapshots, resticErrors, tag, type Snapshot } from "../backup/snapshots";
import { ConfigError } from "../config/errors";
import { durationSeconds, type BackupConfig, type CustomerConfig } from "../config/schema";
import { parseEnvironmentName, type CustomerTarget } from "../config/targets";
import { engineAddress } from "../engine/client";
import { toEngineCreateOptions } from "../engine/createOptions";
import { chownVolume, volumeManifest } from "../engine/oneShot";
import { writeSecretFile } from "../engine/secretFile";
import { manifestDifferences } from "../engine/archiveManifest";
import { customerNames, LABEL_MANAGED, LABEL_ROLE } from "../hardening/names";
import { serviceSpec } from "../hardening/serviceSpec";
import { BACKUP_LOCK_PURPOSE, stackLock, withWaitingLock } from "../project/lock";
import { customerConfigOrBare, readCustomerConfig, writeCustomerStackFile } from "../project/stackFiles";
import { stderrLog, type Log } from "../pulumi/progress";
import { readStack, stackImage } from "../pulumi/stackState";
import { prepareStack, readStackSecret, readStackSecrets, runUp, writeStackSecret } from "../pulumi/stacks";
import type { FleetContext } from "../project/context";
import { formatBytes } from "../table";
import type { Environment } from "./environment";

export const PASSWORD_KEY = "hardened-fleet:backupPassword";
export const CREDENTIAL_KEY = "hardened-fleet:backupCredential";
/**
 * The repositories' password of the local demo (an environment with `localDemo: true`, never
 * production) while it has no secret of its own: documented in the README, as the demo passphrase is.
 */
export const DEMO_BACKUP_PASSWORD = "hardened-fleet-local-demo-backups";

/** An environment's backups, ready to run: its settings, repository and secrets, read once. */
export interface Backups {
  environment: Environment;
  config: BackupConfig;
  repository: Repository;
  secrets: JobSecrets;
  /** the engines this command has made ready for jobs (tool image there, a killed fleet's jobs swept) */
  engines: WeakSet<Dockerode>;
}

const alive = (pid: number) => {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === "EPERM"; }
};

/** The environment's backup settings; a ConfigError naming the fix when it has none. */
export function backupConfig(environment: Environment): BackupConfig {
  const config = environment.config.backup;
  if (!config) {
    throw new ConfigError("--env", [{ path: "hardened-fleet:environment.backup", found: undefined,
      message: `environment '${environment.name}' has no backups: set backup.repository in Pulumi.${environment.name}.yaml (docs/backups.md), then run 'fleet backup init --env ${environment.name}'` }]);
  }
  return config;
}

/** Reads the repository's password (and the account's credential) from the environment stack's secrets. */
export async function openBackups(environment: Environment): Promise<Backups> {
  const config = backupConfig(environment);
  const target = parseEnvironmentName(environment.name, "--env");
  const settings = environment.stackSettings(target);
  const stored = await readStackSecrets(environment.ctx, target, [PASSWORD_KEY, CREDENTIAL_KEY], settings);
  const password = stored[PASSWORD_KEY] ?? (environment.config.localDemo ? DEMO_BACKUP_PASSWORD : undefined);
  if (!password) {
    throw new Error(`environment '${environment.name}' has no backup password yet (the secret ${PASSWORD_KEY}): run 'fleet backup init --env ${environment.name}', ` +
      `or set your own with 'pulumi config set --secret ${PASSWORD_KEY} -s ${environment.name}' (it prompts for it)`);
  }
  return {
    environment, config, repository: parseRepository(config.repository), engines: new WeakSet(),
    secrets: { password, username: config.username, credential: stored[CREDENTIAL_KEY], sftpHostKey: config.sftpHostKey },
  };
}

/**
 * `fleet backup init`: makes the environment's backup password (random, 256 bits) when it has none,
 * as a Pulumi secret of its stack. Whoever holds it can read every backup: keep a copy off the host.
 */
export async function initBackups(environment: Environment, log: Log = stderrLog): Promise<{ created: boolean; repository: string }> {
  const config = backupConfig(environment);
  const target = parseEnvironmentName(environment.name, "--env");
  const settings = environment.stackSettings(target);
  let created = false;
  if (!(await readStackSecret(environment.ctx, target, PASSWORD_KEY, settings))) {
    await writeStackSecret(environment.ctx, target, PASSWORD_KEY, randomBytes(32).toString("base64url"), settings);
    created = true;
    log(`made a backup password for '${environment.name}' (the secret ${PASSWORD_KEY} in Pulumi.${environment.name}.yaml). ` +
      `Keep a copy off this host (pulumi config get ${PASSWORD_KEY} -s ${environment.name}): without it no backup can be read`);
  }
  return { created, repository: describeRepository(parseRepository(config.repository)) };
}

/** The customer's volume and the engine it is on (or `engine` when given: a restore to another node). */
function dataOf(backups: Backups, customer: CustomerConfig, engine?: Dockerode) {
  return { volume: customerNames(customer.environment, customer.id).dataVolume, engine: engine ?? backups.environment.target.dataEngine(customer) };
}

/** The tool image on `engine` and a killed fleet's jobs there swept: once per engine and command. */
async function readyForJobs(backups: Backups, engine: Dockerode): Promise<void> {
  if (backups.engines.has(engine)) return;
  await ensureToolImage(engine, BACKUP_IMAGE);
  await sweepJobs(engine, alive);
  backups.engines.add(engine);
}

/** A job on `engine` for the customer's repository, with `mounts`; the tool image made available there first. */
async function openJob(backups: Backups, customer: CustomerConfig, engine: Dockerode, mounts: JobMount[]): Promise<PreparedJob> {
  await readyForJobs(backups, engine);
  return prepareJob({
    engine, image: BACKUP_IMAGE, repository: customerRepository(backups.repository, customer.id), secrets: backups.secrets,
    environment: customer.environment, customer: customer.id, mounts,
  });
}

/** What went wrong in a restic run, for an error; the repository's state named when restic says so. */
function failure(what: string, r: { exitCode: number; stdout: string; stderr: string }): Error {
  const errors = resticErrors(r.stdout + r.stderr);
  const detail = errors.length > 0 ? errors.slice(0, 3).join("; ") : lastLines(r.stderr);
  const hint = r.exitCode === RESTIC_EXIT.wrongPassword ? ` (the repository refused the password ${PASSWORD_KEY})`
    : r.exitCode === RESTIC_EXIT.locked ? " (the repository is locked by another restic: when none runs, one that was killed left its lock; " +
      "restic counts it stale 30 minutes after its last refresh, or remove it at once with 'restic unlock --remove-all' once you are sure none runs)" : "";
  return new Error(`${what} failed (restic exit ${r.exitCode}${hint}): ${detail}`);
}

/** The customer's repository, made on first use (restic init); refuses a wrong password. */
async function ensureRepository(job: PreparedJob): Promise<void> {
  const r = await job.run(["cat", "config"], 300);
  if (r.exitCode === 0) return;
  if (r.exitCode !== RESTIC_EXIT.repositoryMissing) throw failure("opening the backup repository", r);
  const init = await job.run(["init"], 300);
  if (init.exitCode !== 0) throw failure("creating the backup repository", init);
}

/** The running containers that use the volume on that engine (a backup job's own are not among them). */
async function volumeUsers(engine: Dockerode, volume: string): Promise<Dockerode.ContainerInfo[]> {
  const users = await engine.listContainers({ filters: { volume: [volume], status: ["running"] } });
  return users.filter((c) => c.Labels?.[LABEL_ROLE] !== "backup-job");
}

/**
 * Runs fn with the volume's users paused; they resume however fn ends. A guard process
 * (pauseWatchdog.ts) resumes them, after stopping the job, should this process die meanwhile.
 * Returns fn's result and how long the customer was paused.
 */
async function paused<T>(ctx: FleetContext, engine: Dockerode, volume: string, jobId: string, limitSeconds: number, log: Log,
  fn: () => Promise<T>): Promise<{ result: T; pauseMs: number }> {
  const users = await volumeUsers(engine, volume);
  const guard = users.length > 0 ? startGuard(ctx, engine, jobId, users.map((u) => u.Id), limitSeconds + 60) : undefined;
  const frozen: Dockerode.Container[] = [];
  const t0 = Date.now();
  try {
    if (guard) await guard.ready;
    if (users.length > 0) log(`pausing ${users.map((u) => u.Names[0]?.replace(/^\//, "")).join(", ")} for a consistent copy of ${volume}`);
    for (const u of users) {
      const c = engine.getContainer(u.Id);
      frozen.push(c); // resumed in any case, even when a pause failed half way
      await pauseContainer(c, u.Names[0]?.replace(/^\//, "") ?? u.Id, log);
    }
    const result = await fn();
    return { result, pauseMs: Date.now() - t0 };
  } finally {
    for (const c of frozen) await c.unpause().catch(() => { /* gone meanwhile */ });
    guard?.stop();
  }
}

/**
 * Pauses a container (the cgroup freezer). The kernel may fail to freeze it in the time runc gives
 * (processes busy in the kernel, e.g. in a flush to disk): runc then leaves it running and the engine
 * says "unable to freeze". That is tried again, 5 times in all over about 8 s, before it is an error.
 */
export async function pauseContainer(c: Dockerode.Container, name: string, log: Log, attempts = 5): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await c.pause();
      return;
    } catch (err) {
      const message = (err as Error).message;
      if (/is already paused/i.test(message)) return;
      if (attempt >= attempts || !/unable to freeze|freez/i.test(message)) {
        throw new Error(`the engine could not pause ${name} for a consistent snapshot (${attempt} attempt(s)): ${message.split("\n")[0]}; ` +
          "it keeps running; the backup is due again at the next run");
      }
      const waitMs = 500 * 2 ** (attempt - 1);
      log(`${name}: the engine could not freeze it yet (busy in the kernel); trying again in ${waitMs / 1000}s`);
      await c.unpause().catch(() => { /* not paused: runc thawed it */ });
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

/** Starts the guard of a pause (detached: it outlives this process and its process group). */
function startGuard(ctx: FleetContext, engine: Dockerode, job: string, containers: string[], limitSeconds: number): { ready: Promise<void>; stop(): void } {
  const script = path.join(__dirname, "..", "backup", `pauseWatchdog${path.extname(__filename)}`);
  // what it says (only when it had to act, or failed) goes to .fleet/pause-guard.log
  const logFile = path.join(ctx.projectDir, ".fleet", "pause-guard.log");
  const out = fs.openSync(logFile, "a", 0o600);
  const child = spawn(process.execPath, [...process.execArgv, script, String(process.pid), String(Date.now() + limitSeconds * 1000),
    engineAddress(engine), job, ...containers], { detached: true, stdio: ["ignore", out, out] });
  fs.closeSync(out);
  child.unref();
  // spawned means running: it resumes the customer from its first look at this process on
  const ready = new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", (err) => reject(new Error(`cannot start the guard of the pause (${script}): ${err.message}; nothing was paused`)));
  });
  return { ready, stop: () => { try { child.kill("SIGTERM"); } catch { /* gone */ } } };
}

async function volumeExists(engine: Dockerode, volume: string): Promise<boolean> {
  return engine.getVolume(volume).inspect().then(() => true, () => false);
}

/**
 * One consistent snapshot of the customer's data (the caller holds its stack lock). Its customers'
 * containers are paused for restic's read of the volume; the repository is made on first use.
 */
async function snapshotOf(backups: Backups, customer: CustomerConfig, reason: string, log: Log, engine?: Dockerode): Promise<BackupRecord> {
  const { volume, engine: on } = dataOf(backups, customer, engine);
  const at = new Date();
  const record: BackupRecord = { kind: "backup", customer: customer.id, at: at.toISOString(), ok: false, durationMs: 0, reason, node: customer.node };
  try {
    if (!(await volumeExists(on, volume))) throw new Error(`its data volume ${volume} does not exist${customer.node ? ` on ${customer.node}` : ""}`);
    const job = await openJob(backups, customer, on, [{ volume, target: "/data", readOnly: true }]);
    try {
      await ensureRepository(job);
      const stack = `${customer.environment}-${customer.id}`;
      const { result: r, pauseMs } = await paused(backups.environment.ctx, on, volume, job.id, backups.config.maxPauseSeconds, log, () =>
        job.run(["backup", "--json", "--host", stack, "--tag", tag("customer", customer.id), "--tag", tag("reason", reason), "/data"],
          backups.config.maxPauseSeconds));
      record.pauseMs = pauseMs;
      const summary = parseBackupSummary(r.stdout);
      // exit 3: a snapshot without some files; never a backup that counts
      if (r.exitCode !== 0 || !summary) throw failure("restic backup", r);
      Object.assign(record, { ok: true, snapshot: summary.snapshot, bytes: summary.totalBytes, added: summary.added, files: summary.files });
    } finally {
      await job.dispose();
    }
  } catch (err) {
    record.error = (err as Error).message;
  }
  record.durationMs = Date.now() - at.getTime();
  appendRecord(backups.environment.ctx.projectDir, customer.environment, record);
  if (record.ok) {
    log(`${customer.id}: snapshot ${record.snapshot!.slice(0, 8)} (${reason}): ${record.files} files, ${formatBytes(record.bytes!)}, ` +
      `${formatBytes(record.added!)} new; paused ${record.pauseMs} ms; ${(record.durationMs / 1000).toFixed(1)} s in all`);
  }
  return record;
}

/** The customer's config; an error naming the fix when it has no stack file. */
function customerOf(environment: Environment, target: CustomerTarget): CustomerConfig {
  const c = readCustomerConfig(environment.ctx.projectDir, target.stack);
  if (!c) throw new Error(`no customer ${target.customer} in '${target.environment}' (no Pulumi.${target.stack}.yaml): see 'fleet list'`);
  return c;
}

/** `fleet backup <customer>`: one snapshot now, under the customer's stack lock (a deployment is waited for). */
export async function backupCustomer(backups: Backups, target: CustomerTarget, reason = "manual", log: Log = stderrLog): Promise<BackupRecord> {
  const customer = customerOf(backups.environment, target);
  const record = await withWaitingLock(backups.environment.ctx.projectDir, stackLock(target.stack),
    () => snapshotOf(backups, customer, reason, log), 600, { purpose: BACKUP_LOCK_PURPOSE });
  if (!record.ok) throw new Error(`backup of ${target.customer} in '${target.environment}' FAILED: ${record.error}`);
  return record;
}

export interface RunSummary {
  ok: BackupRecord[];
  failed: BackupRecord[];
  skipped: string[];
}

/**
 * `fleet backup --all` / `--due`: the environment's customers one after another (all, or those whose
 * slot passed: schedule.ts); a failure is recorded and the others still run.
 */
export async function backupMany(backups: Backups, opts: { dueOnly: boolean; now?: number }, log: Log = stderrLog): Promise<RunSummary> {
  const { environment } = backups;
  const interval = durationSeconds(backups.config.schedule);
  const last = latestByCustomer(readRecords(environment.ctx.projectDir, environment.name), "backup");
  const customers = environment.customers();
  const chosen = opts.dueOnly
    ? customers.filter((c) => {
      const l = last.get(c.id);
      return isDue(opts.now ?? Date.now(), c.id, interval, l && { at: Date.parse(l.at), ok: l.ok });
    })
    : customers;
  const out: RunSummary = { ok: [], failed: [], skipped: customers.filter((c) => !chosen.includes(c)).map((c) => c.id) };
  if (opts.dueOnly) log(`${environment.name}: ${chosen.length} of ${customers.length} customers due for a backup (every ${backups.config.schedule})`);
  for (const [i, c] of chosen.entries()) {
    log(`${environment.name}: backing up ${c.id} (${i + 1}/${chosen.length})`);
    const target: CustomerTarget = { kind: "customer", environment: c.environment, customer: c.id, stack: `${c.environment}-${c.id}` };
    const r = await withWaitingLock(environment.ctx.projectDir, stackLock(target.stack),
      () => snapshotOf(backups, c, opts.dueOnly ? "scheduled" : "manual", log), 600, { purpose: BACKUP_LOCK_PURPOSE })
      .catch((err: Error) => ({ kind: "backup", customer: c.id, at: new Date().toISOString(), ok: false, durationMs: 0, error: err.message }) as BackupRecord);
    if (r.ok) out.ok.push(r);
    else {
      log(`${c.id}: backup FAILED: ${r.error}`);
      out.failed.push(r);
    }
  }
  return out;
}

/** `fleet backups <customer>`: the snapshots of the customer's repository, oldest first. */
export async function listSnapshots(backups: Backups, target: CustomerTarget): Promise<Snapshot[]> {
  const customer = customerConfigOrBare(backups.environment.ctx.projectDir, target);
  const job = await openJob(backups, customer, backups.environment.target.dataEngine(customer.node ? customer : undefined), []);
  try {
    return await snapshotsIn(job);
  } finally {
    await job.dispose();
  }
}

async function snapshotsIn(job: PreparedJob): Promise<Snapshot[]> {
  const r = await job.run(["snapshots", "--json"], 300);
  if (r.exitCode === RESTIC_EXIT.repositoryMissing) return [];
  if (r.exitCode !== 0) throw failure("listing the snapshots", r);
  return parseSnapshots(r.stdout);
}

const SNAPSHOT_ID = /^[0-9a-f]{8,64}$/;

/** The snapshot asked for (an id or its first 8+ characters), else the newest. */
function chooseSnapshot(snapshots: Snapshot[], wanted: string | undefined, customer: string): Snapshot {
  if (snapshots.length === 0) throw new Error(`${customer} has no snapshot in its repository: nothing to restore`);
  if (!wanted) return snapshots[snapshots.length - 1]!;
  const found = snapshots.filter((s) => s.id.startsWith(wanted));
  if (found.length !== 1) {
    throw new ConfigError("--snapshot", [{ path: "--snapshot", found: JSON.stringify(wanted),
      message: found.length === 0 ? `names no snapshot of ${customer}: see 'fleet backups ${customer} --env <env>'` : "matches more than one snapshot: give more of its id" }]);
  }
  return found[0]!;
}

/** Checks a snapshot id given on the command line. */
export function parseSnapshotId(raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || !SNAPSHOT_ID.test(raw)) {
    throw new ConfigError("--snapshot", [{ path: "--snapshot", found: JSON.stringify(raw), message: "must be a snapshot id: 8 to 64 lowercase hex digits, as 'fleet backups' shows" }]);
  }
  return raw;
}

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export interface Restored {
  snapshot: Snapshot;
  files: number;
  bytes: number;
}

/**
 * Restores `snapshot` into `volume` (made when missing, given to 1000) and checks it: restic re-reads
 * every restored file against the snapshot's content hashes (--verify), and the volume then holds
 * exactly the snapshot's files with their sizes.
 */
async function restoreInto(job: PreparedJob, engine: Dockerode, volume: string, snapshot: Snapshot): Promise<Restored> {
  const r = await job.run(["restore", `${snapshot.id}:/data`, "--target", "/restore", "--verify", "--json"], 3600);
  if (r.exitCode !== 0) throw failure(`restoring snapshot ${snapshot.shortId}`, r);
  const ls = await job.run(["ls", "--json", snapshot.id], 600);
  if (ls.exitCode !== 0) throw failure(`listing snapshot ${snapshot.shortId}`, ls);
  const expected = parseLs(ls.stdout);
  const manifest = await volumeManifest(engine, volume);
  const missing = expected.filter((f) => manifest.get(`./${f.path}`)?.size !== f.size);
  const extra = manifest.size - expected.length;
  if (missing.length > 0 || extra !== 0) {
    throw new Error(`the restored volume ${volume} differs from snapshot ${snapshot.shortId}: ` +
      `${missing.length} files missing or of another size (${missing.slice(0, 3).map((f) => f.path).join(", ")}), ${extra} files too many`);
  }
  return { snapshot, files: expected.length, bytes: expected.reduce((n, f) => n + f.size, 0) };
}

/** A scratch volume for a restore or a drill, empty and owned by 1000 (left ones are replaced). */
async function scratchVolume(backups: Backups, engine: Dockerode, name: string, customer: CustomerConfig): Promise<string> {
  await readyForJobs(backups, engine);
  await engine.getVolume(name).remove({ force: true }).catch(() => {});
  await engine.createVolume({ Name: name, Labels: { [LABEL_MANAGED]: "false", [LABEL_ROLE]: "backup-scratch", [LABEL_BACKUP_OF]: `${customer.environment}-${customer.id}` } });
  await chownVolume(engine, name);
  return name;
}

/** Replaces everything in `volume` by what `from` holds, as 1000 (the customer is paused meanwhile). */
async function swapIn(engine: Dockerode, from: string, volume: string, jobId: string): Promise<void> {
  const r = await runContainer(engine, {
    Image: BACKUP_IMAGE, User: "1000:1000", Entrypoint: [], Labels: { [LABEL_MANAGED]: "false", [LABEL_ROLE]: "backup-job", ...ownedBy(jobId) },
    Cmd: ["sh", "-c", "find /data -mindepth 1 -delete && cp -a /restore/. /data/"],
    HostConfig: { ...hardened, NetworkMode: "none", Memory: 256 * 1024 * 1024, PidsLimit: 32,
      Mounts: [{ Type: "volume", Source: from, Target: "/restore", ReadOnly: true }, { Type: "volume", Source: volume, Target: "/data" }] },
  }, 3600);
  if (r.exitCode !== 0) throw new Error(`copying the restored data into ${volume} failed (exit ${r.exitCode}): ${lastLines(r.stderr)}`);
}

export interface RestoreRequest {
  snapshot?: string;
  /** restore into this volume for inspection; the customer is not touched */
  into?: string;
  /** target: swarm: restore on this node (its own was lost) and run the customer there */
  node?: string;
}

export interface RestoreResult extends Restored {
  customer: string;
  volume: string;
  /** the snapshot of the data it replaced */
  safety?: string;
  node?: string;
  healthy?: boolean;
}

/** Waits until the customer's container (or service) is healthy again. */
async function waitHealthy(environment: Environment, container: string, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let health = "";
  while (Date.now() < deadline) {
    ({ health } = await environment.target.status(container));
    if (health.startsWith("healthy")) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${container} is not healthy ${timeoutSeconds}s after the restore (${health})`);
}

/**
 * `fleet restore`: the customer's data from a snapshot (default: the newest). With `into`, only into
 * that volume. Otherwise: restored into a scratch volume and checked, a safety snapshot of the data
 * it replaces, the data swapped in while the customer is paused, the customer restarted and healthy.
 * A customer whose container or volume is gone is deployed again first (with `node`: on that node).
 */
export async function restoreCustomer(backups: Backups, target: CustomerTarget, req: RestoreRequest, log: Log = stderrLog): Promise<RestoreResult> {
  const { environment } = backups;
  const { ctx } = environment;
  const wanted = parseSnapshotId(req.snapshot);
  if (req.into !== undefined && (!VOLUME_NAME.test(req.into) || /^hf-.*-(data|secrets)$/.test(req.into))) {
    throw new ConfigError("--into", [{ path: "--into", found: JSON.stringify(req.into),
      message: "must be a new volume name (letters, digits, _ . -), not a customer's data or secrets volume: it is for inspection" }]);
  }
  if (req.node !== undefined) environment.target.nodeEngineFor(req.node); // one host refuses any node
  const at = new Date();
  const record: BackupRecord = { kind: "restore", customer: target.customer, at: at.toISOString(), ok: false, durationMs: 0, reason: req.into ? `into ${req.into}` : "live" };
  try {
    const result = await (req.into !== undefined
      ? restoreForInspection(backups, target, wanted, req.into, log)
      : withWaitingLock(ctx.projectDir, stackLock(target.stack), () => restoreLive(backups, target, wanted, req.node, log), 600));
    Object.assign(record, { ok: true, snapshot: result.snapshot.id, files: result.files, bytes: result.bytes, node: result.node });
    return result;
  } catch (err) {
    record.error = (err as Error).message;
    throw err;
  } finally {
    record.durationMs = Date.now() - at.getTime();
    appendRecord(ctx.projectDir, target.environment, record);
  }
}

async function restoreForInspection(backups: Backups, target: CustomerTarget, wanted: string | undefined, into: string, log: Log): Promise<RestoreResult> {
  const customer = customerConfigOrBare(backups.environment.ctx.projectDir, target);
  const engine = backups.environment.target.dataEngine(customer.node ? customer : undefined);
  await readyForJobs(backups, engine);
  if (await volumeExists(engine, into)) {
    const m = await volumeManifest(engine, into).catch(() => undefined);
    if (!m || m.size > 0) throw new ConfigError("--into", [{ path: "--into", found: JSON.stringify(into), message: "names a volume that has files already: give a new name" }]);
  } else {
    await engine.createVolume({ Name: into, Labels: { [LABEL_MANAGED]: "false", [LABEL_ROLE]: "backup-inspection" } });
  }
  await chownVolume(engine, into);
  const job = await openJob(backups, customer, engine, [{ volume: into, target: "/restore", readOnly: false }]);
  try {
    const snapshot = chooseSnapshot(await snapshotsIn(job), wanted, target.customer);
    log(`${target.customer}: restoring snapshot ${snapshot.shortId} of ${snapshot.time} into volume ${into} (the customer is not touched)`);
    const restored = await restoreInto(job, engine, into, snapshot);
    log(`${target.customer}: ${restored.files} files (${formatBytes(restored.bytes)}) in ${into}, checked against the snapshot`);
    return { ...restored, customer: target.customer, volume: into, node: customer.node };
  } finally {
    await job.dispose();
  }
}

async function restoreLive(backups: Backups, target: CustomerTarget, wanted: string | undefined, node: string | undefined, log: Log): Promise<RestoreResult> {
  const { environment } = backups;
  const { ctx } = environment;
  let customer = customerOf(environment, target);
  const engine = node !== undefined ? environment.target.nodeEngineFor(node) : environment.target.dataEngine(customer);
  const volume = customerNames(target.environment, target.customer).dataVolume;
  const scratch = await scratchVolume(backups, engine, `${volume}-restore`, customer);
  try {
    // 1. the snapshot into the scratch volume, checked: the customer runs untouched meanwhile
    const job = await openJob(backups, { ...customer, node: node ?? customer.node }, engine, [{ volume: scratch, target: "/restore", readOnly: false }]);
    let restored: Restored;
    try {
      const snapshot = chooseSnapshot(await snapshotsIn(job), wanted, target.customer);
      log(`${target.customer}: restoring snapshot ${snapshot.shortId} of ${snapshot.time} into a scratch volume and checking it`);
      restored = await restoreInto(job, engine, scratch, snapshot);
    } finally {
      await job.dispose();
    }
    log(`${target.customer}: ${restored.files} files (${formatBytes(restored.bytes)}) restored and checked against the snapshot`);

    // 2. the customer running on the engine that gets the data (deployed again when it is gone, or on its new node)
    const stack = await prepareStack(ctx, target, log, false, environment.stackSettings(target));
    if (node !== undefined && node !== customer.node) {
      log(`${target.customer}: deploying it on ${node} (its data on ${customer.node} is lost)`);
      customer = { ...customer, node };
      writeCustomerStackFile(ctx.projectDir, customer, environment.dockerHost);
      await runUp(stack, log, { refresh: true });
    } else if (!(await volumeExists(engine, volume)) || (await volumeUsers(engine, volume)).length === 0) {
      log(`${target.customer}: its container or data volume is gone: deploying it again first`);
      await runUp(stack, log, { refresh: true });
    }
    const container = String((await readStack(ctx, target.stack))?.outputs.containerName ?? "");
    if (!container) throw new Error(`${target.stack} has no deployed container to restore into`);

    // 3. a safety snapshot of what is there now, then the swap while the customer is paused
    const safety = await snapshotOf(backups, customer, "safety", log, engine);
    if (!safety.ok) throw new Error(`the safety snapshot of ${target.customer}'s current data failed, so nothing was changed: ${safety.error}`);
    log(`${target.customer}: swapping the restored data in (paused), then restarting it`);
    const swapJob = `hf-bkswap-${randomBytes(5).toString("hex")}`;
    await paused(ctx, engine, volume, swapJob, 600, log, () => swapIn(engine, scratch, volume, swapJob));
    await environment.target.restartCustomer(container);
    await waitHealthy(environment, container, environment.config.deploy.healthTimeoutSeconds);
    log(`${target.customer}: healthy on the data of snapshot ${restored.snapshot.shortId} (the data it replaced is snapshot ${safety.snapshot!.slice(0, 8)})`);
    return { ...restored, customer: target.customer, volume, safety: safety.snapshot, node: customer.node, healthy: true };
  } finally {
    await engine.getVolume(scratch).remove({ force: true }).catch(() => {});
  }
}

export interface DrillResult {
  customer: string;
  ok: boolean;
  snapshot?: string;
  files?: number;
  bytes?: number;
  error?: string;
  durationMs: number;
}

/** Starts the customer's own image on the restored volume, without a network, and waits for its healthcheck. */
async function bootOnScratch(environment: Environment, customer: CustomerConfig, engine: Dockerode, image: string, scratch: string): Promise<void> {
  const spec = serviceSpec(environment.config, customer, image);
  const name = `${scratch}-app`;
  const secrets = `${scratch}-key`;
  const labels = { [LABEL_MANAGED]: "false", [LABEL_ROLE]: "backup-drill", [LABEL_BACKUP_OF]: `${customer.environment}-${customer.id}`,
    ...ownedBy(`hf-bkdrill-${randomBytes(5).toString("hex")}`) };
  // its lines stay with the engine (json-file): a drill is not the customer's service
  const drillSpec = { ...spec, containerName: name, networkName: "none", labels, data: { ...spec.data, volume: scratch },
    secretFile: { ...spec.secretFile!, volume: secrets } };
  await engine.getContainer(name).remove({ force: true }).catch(() => {});
  // a throwaway key: the drill proves the data and the image, not the customer's secret
  await writeSecretFile(engine, drillSpec.secretFile, randomBytes(32).toString("hex"), { image, labels });
  try {
    const opts = toEngineCreateOptions(drillSpec, {});
    const c = await engine.createContainer({ ...opts, ExposedPorts: {}, NetworkingConfig: undefined, HostConfig: { ...opts.HostConfig, NetworkMode: "none", RestartPolicy: { Name: "no" } } });
    await c.start();
    const deadline = Date.now() + spec.healthTimeoutSeconds * 1000;
    for (;;) {
      const info = await c.inspect();
      const status = info.State.Health?.Status;
      if (status === "healthy") return;
      if (!info.State.Running) throw new Error(`its image exited (${info.State.ExitCode}) on the restored data`);
      if (status === "unhealthy" || Date.now() > deadline) throw new Error(`its image did not become healthy on the restored data (${status ?? "no health"})`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await engine.getContainer(name).remove({ force: true }).catch(() => {});
    await engine.getVolume(secrets).remove({ force: true }).catch(() => {});
  }
}

/**
 * `fleet backup drill`: for each customer, its newest snapshot restored into a scratch volume and
 * checked, then its own image started there (no network) until healthy. Recorded per customer.
 */
export async function drill(backups: Backups, log: Log = stderrLog): Promise<DrillResult[]> {
  const { environment } = backups;
  const results: DrillResult[] = [];
  for (const customer of environment.customers()) {
    const t0 = Date.now();
    const result: DrillResult = { customer: customer.id, ok: false, durationMs: 0 };
    const engine = environment.target.dataEngine(customer);
    const scratch = `${customerNames(customer.environment, customer.id).dataVolume}-drill`;
    try {
      const image = await stackImage(environment.ctx, { kind: "customer", environment: customer.environment, customer: customer.id, stack: `${customer.environment}-${customer.id}` });
      if (!image) throw new Error("it has never been deployed: no image to start on the restored data");
      await environment.target.prepareOneShot(engine, image);
      await scratchVolume(backups, engine, scratch, customer);
      const job = await openJob(backups, customer, engine, [{ volume: scratch, target: "/restore", readOnly: false }]);
      let restored: Restored;
      try {
        const snapshots = await snapshotsIn(job);
        if (snapshots.length === 0) throw new Error("it has no snapshot yet: run 'fleet backup' first");
        restored = await restoreInto(job, engine, scratch, snapshots[snapshots.length - 1]!);
      } finally {
        await job.dispose();
      }
      await bootOnScratch(environment, customer, engine, image, scratch);
      Object.assign(result, { ok: true, snapshot: restored.snapshot.id, files: restored.files, bytes: restored.bytes });
      log(`${customer.id}: drill passed: snapshot ${restored.snapshot.shortId}, ${restored.files} files checked, its image healthy on them`);
    } catch (err) {
      result.error = (err as Error).message;
      log(`${customer.id}: drill FAILED: ${result.error}`);
    } finally {
      await engine.getVolume(scratch).remove({ force: true }).catch(() => {});
      result.durationMs = Date.now() - t0;
      appendRecord(environment.ctx.projectDir, environment.name, { kind: "drill", customer: customer.id, at: new Date(t0).toISOString(), ok: result.ok,
        durationMs: result.durationMs, snapshot: result.snapshot, files: result.files, bytes: result.bytes, error: result.error, node: customer.node });
    }
    results.push(result);
  }
  return results;
}

export interface PruneRequest {
  /** the repository with delete rights, as backup.repository is written (e.g. the rest-server without --append-only) */
  repository: string;
  /** its account (default: backup.username) */
  username?: string;
  /** a file holding that account's password: it is read here, never kept */
  credentialFile: string;
}

export interface PruneResult {
  customer: string;
  before: number;
  kept: number;
  removed: number;
}

/**
 * `fleet backup prune`: the retention policy on every customer's repository, with a credential the
 * fleet host does not keep (backup.repository is append-only for it). restic's choice is checked
 * against the policy (retention.ts) before anything is removed.
 */
export async function pruneBackups(backups: Backups, req: PruneRequest, log: Log = stderrLog): Promise<PruneResult[]> {
  const { environment } = backups;
  let credential: string;
  try {
    credential = fs.readFileSync(req.credentialFile, "utf8").replace(/\r?\n$/, "");
  } catch (err) {
    throw new ConfigError("--credential-file", [{ path: "--credential-file", found: JSON.stringify(req.credentialFile), message: `cannot be read: ${(err as Error).message}` }]);
  }
  const admin: Backups = { ...backups, repository: parseRepository(req.repository),
    secrets: { ...backups.secrets, username: req.username ?? backups.secrets.username, credential } };
  const results: PruneResult[] = [];
  for (const customer of environment.customers()) {
    const job = await openJob(admin, customer, environment.target.dataEngine(customer), []);
    try {
      const before = await snapshotsIn(job);
      if (before.length === 0) continue;
      const expected = keptByPolicy(before, backups.config.retention);
      const dry = await job.run(["forget", "--retry-lock", "2m", "--dry-run", "--json", ...forgetArgs(backups.config.retention)], 600);
      if (dry.exitCode !== 0) throw failure(`planning the prune of ${customer.id}`, dry);
      const planned = new Set((JSON.parse(dry.stdout.trim().split("\n").pop() ?? "[]") as { keep?: { id: string }[] }[])
        .flatMap((g) => (g.keep ?? []).map((s) => s.id)));
      if (planned.size !== expected.size || [...planned].some((id) => !expected.has(id))) {
        throw new Error(`${customer.id}: restic would keep ${planned.size} snapshots where the policy keeps ${expected.size}: nothing was removed`);
      }
      const r = await job.run(["forget", "--retry-lock", "2m", "--prune", "--json", ...forgetArgs(backups.config.retention)], 3600);
      if (r.exitCode !== 0) throw failure(`pruning ${customer.id}`, r);
      const after = await snapshotsIn(job);
      // restic reports a delete the server refused (an append-only account) on stderr only
      if (after.length !== expected.size || after.some((a) => !expected.has(a.id))) {
        throw new Error(`${customer.id}: the repository still holds ${after.length} snapshots where the policy keeps ${expected.size}: ` +
          `it refused to delete (is ${describeRepository(admin.repository)} the append-only endpoint, or the account without delete rights?) ${lastLines(r.stderr, 2)}`);
      }
      results.push({ customer: customer.id, before: before.length, kept: after.length, removed: before.length - after.length });
      log(`${customer.id}: kept ${after.length} of ${before.length} snapshots (hourly ${backups.config.retention.hourly}, daily ${backups.config.retention.daily}, ` +
        `weekly ${backups.config.retention.weekly}, monthly ${backups.config.retention.monthly})`);
      appendRecord(environment.ctx.projectDir, environment.name, { kind: "prune", customer: customer.id, at: new Date().toISOString(), ok: true, durationMs: 0,
        files: after.length });
    } finally {
      await job.dispose();
    }
  }
  return results;
}

/**
 * Deprovision's final snapshot (the caller holds the stack lock): taken while the customer still
 * runs, paused. Returns undefined when the environment has no backups.
 */
export async function finalSnapshot(environment: Environment, customer: CustomerConfig, log: Log): Promise<{ backups: Backups; record: BackupRecord } | undefined> {
  if (!environment.config.backup) return undefined;
  const backups = await openBackups(environment);
  const record = await snapshotOf(backups, customer, "final", log);
  if (!record.ok) throw new Error(`the final snapshot of ${customer.id} failed, so nothing was removed: ${record.error}`);
  return { backups, record };
}

/**
 * Before a purge: the volume (nothing runs on it any more) equals a verified snapshot. The final
 * snapshot was taken while the customer ran, so a snapshot of the quiet volume is taken now (quick:
 * only what changed since is read), restored into a scratch volume with --verify, and every file's
 * size and sha256 compared with the volume's. Throws unless all of that holds.
 */
export async function verifiedSnapshotOfVolume(backups: Backups, customer: CustomerConfig, engine: Dockerode, log: Log): Promise<string> {
  const volume = customerNames(customer.environment, customer.id).dataVolume;
  const record = await snapshotOf(backups, customer, "final", log, engine);
  if (!record.ok) throw new Error(`the last snapshot before deleting ${volume} failed: ${record.error}`);
  const scratch = await scratchVolume(backups, engine, `${volume}-verify`, customer);
  try {
    const job = await openJob(backups, customer, engine, [{ volume: scratch, target: "/restore", readOnly: false }]);
    try {
      const snapshot = (await snapshotsIn(job)).find((s) => s.id === record.snapshot);
      if (!snapshot) throw new Error(`snapshot ${record.snapshot} is not in the repository`);
      await restoreInto(job, engine, scratch, snapshot);
    } finally {
      await job.dispose();
    }
    const [inVolume, inSnapshot] = await Promise.all([volumeManifest(engine, volume), volumeManifest(engine, scratch)]);
    const differences = manifestDifferences(inVolume, inSnapshot);
    if (differences.length > 0) throw new Error(`snapshot ${record.snapshot!.slice(0, 8)} differs from ${volume}: ${differences.join("; ")}`);
    log(`${customer.id}: snapshot ${record.snapshot!.slice(0, 8)} restored and equal to ${volume}, file by file (${inVolume.size} files)`);
    return record.snapshot!;
  } finally {
    await engine.getVolume(scratch).remove({ force: true }).catch(() => {});
  }
}

/** Each customer's last backup and last drill, from the records (`fleet list`). */
export function lastResults(environment: Environment): { backup: Map<string, BackupRecord>; drill: Map<string, BackupRecord> } {
  const records = readRecords(environment.ctx.projectDir, environment.name);
  return { backup: latestByCustomer(records, "backup"), drill: latestByCustomer(records, "drill") };
}

