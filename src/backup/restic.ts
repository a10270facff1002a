/**
 * restic in a hardened one-shot container on the engine that holds the customer's data: UID 1000,
 * CapDrop ALL, no-new-privileges, read-only root with a tmpfs /tmp, memory/CPU/PIDs limits.
 *
 * Secrets: the repository password and the account's credential go into a volume of the job's own
 * (files 0400 of 1000, mounted read-only), which lives only while the job does; restic reads them
 * with --password-file and --repository-file. They are in no command line, no environment variable
 * and no image; the job's environment names only the files.
 *
 * Network: a local repository is a directory of the engine's host, bind-mounted, and the job has no
 * network at all. An off-host repository is reached through a relay: the job sits alone on an
 * internal network (no gateway), where a relay container answers to the repository's host name and
 * forwards that one port, and nothing else, to the repository (repository.ts).
 */
import { randomBytes } from "node:crypto";
import * as os from "node:os";
import type Dockerode from "dockerode";
import { lastLines, runToEnd } from "../engine/oneShot";
import { secretFilesTar } from "../engine/secretFile";
import { APP_GID, APP_UID, LABEL_MANAGED, LABEL_ROLE } from "../hardening/names";
import { DEFAULT_RUNTIME } from "../hardening/sandbox";
import { describeRepository, hostInsideJob, relayTarget, resticLocation, type Repository } from "./repository";

/** Labels of every object a job makes: a sweep finds the ones a killed fleet left (sweepJobs). */
export const LABEL_JOB = "io.hardened-fleet.backup-job";
const LABEL_JOB_OWNER = "io.hardened-fleet.backup-job-owner";
/** `<environment>-<customer>` whose data a job, scratch volume or drill works on */
export const LABEL_BACKUP_OF = "io.hardened-fleet.backup-of";
export const ROLE_BACKUP_JOB = "backup-job";
/** the relay of a job's network to its repository: it must outlive restic's last request (its lock's removal) */
export const ROLE_BACKUP_RELAY = "backup-relay";

/** The one network every relay leaves the engine by (a plain bridge); jobs never join it. */
export const EGRESS_NETWORK = "hf-backup-egress";

const SECRETS_DIR = "/run/fleet";

export interface JobSecrets {
  /** the repository's password (hardened-fleet:backupPassword) */
  password: string;
  /** the account on the repository's server (backup.username) */
  username?: string;
  /** that account's password or key (hardened-fleet:backupCredential) */
  credential?: string;
  /** sftp: the server's host key (backup.sftpHostKey) */
  sftpHostKey?: string;
}

export interface JobMount {
  volume: string;
  target: string;
  readOnly: boolean;
}

export interface ResticJob {
  engine: Dockerode;
  /** the backup image, present on that engine */
  image: string;
  /** the customer's repository */
  repository: Repository;
  secrets: JobSecrets;
  environment: string;
  customer: string;
  mounts: JobMount[];
}

export interface ResticResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** restic's exit codes (restic 0.17 and later) that a caller tells apart. */
export const RESTIC_EXIT = { repositoryMissing: 10, locked: 11, wrongPassword: 12 } as const;

/** A job's containers, network and secrets volume, made before the run so a pause waits for nothing else. */
export interface PreparedJob {
  /** the value of LABEL_JOB on everything it makes */
  readonly id: string;
  /** runs `restic <args>` in the job; may be called more than once */
  run(args: string[], timeoutSeconds?: number): Promise<ResticResult>;
  /** removes everything the job made */
  dispose(): Promise<void>;
}

const owner = () => `${os.hostname()}:${process.pid}`;

/**
 * The labels that tie what a job (or a drill, a swap) makes to this process: sweepJobs removes it
 * once this process is gone, whatever ended it.
 */
export function ownedBy(id: string): Record<string, string> {
  return { [LABEL_JOB]: id, [LABEL_JOB_OWNER]: owner() };
}

/** The secret files of the job, for its repository's kind. Pure. */
export function jobSecretFiles(repo: Repository, secrets: JobSecrets): { name: string; body: string }[] {
  const files = [{ name: "password", body: secrets.password }];
  let location = resticLocation(repo);
  if (repo.kind === "rest" && secrets.username) {
    const auth = `${encodeURIComponent(secrets.username)}${secrets.credential ? `:${encodeURIComponent(secrets.credential)}` : ""}@`;
    location = location.replace("://", `://${auth}`);
  }
  files.push({ name: "repository", body: location });
  if (repo.kind === "s3" && secrets.username && secrets.credential) {
    files.push({ name: "aws-credentials", body: `[default]\naws_access_key_id = ${secrets.username}\naws_secret_access_key = ${secrets.credential}\n` });
  }
  if (repo.kind === "sftp") {
    if (secrets.credential) files.push({ name: "ssh-key", body: secrets.credential.endsWith("\n") ? secrets.credential : `${secrets.credential}\n` });
    if (secrets.sftpHostKey) files.push({ name: "known_hosts", body: `${repo.host} ${secrets.sftpHostKey}\n` });
  }
  return files;
}

/** restic's options for the job's repository kind (files in SECRETS_DIR). Pure. */
export function jobOptions(repo: Repository): { env: string[]; args: string[] } {
  const env = [`RESTIC_PASSWORD_FILE=${SECRETS_DIR}/password`, `RESTIC_REPOSITORY_FILE=${SECRETS_DIR}/repository`, "HOME=/tmp", "TMPDIR=/tmp"];
  const args = ["--no-cache"];
  if (repo.kind === "s3") env.push(`AWS_SHARED_CREDENTIALS_FILE=${SECRETS_DIR}/aws-credentials`);
  if (repo.kind === "sftp") {
    // the host key (backup.sftpHostKey) is checked against the real name, though the job connects to the relay
    args.push("-o", `sftp.command=ssh -i ${SECRETS_DIR}/ssh-key -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes ` +
      `-o UserKnownHostsFile=${SECRETS_DIR}/known_hosts -o HostKeyAlias=${repo.host} -p ${repo.port} ${repo.user}@${hostInsideJob(repo)} -s sftp`);
  }
  return { env, args };
}

/** What every container of a job gets (with its own limits and, where it needs one, a capability). */
export const hardened = {
  // fleet's own tools run under runc, named: a swarm sandbox node's default runtime is runsc
  Runtime: DEFAULT_RUNTIME,
  CapDrop: ["ALL"],
  SecurityOpt: ["no-new-privileges:true"],
  ReadonlyRootfs: true,
} as const;

async function removeContainer(engine: Dockerode, name: string): Promise<void> {
  await engine.getContainer(name).remove({ force: true }).catch(() => {});
}

async function ensureEgressNetwork(engine: Dockerode): Promise<void> {
  try {
    await engine.getNetwork(EGRESS_NETWORK).inspect();
  } catch {
    await engine.createNetwork({ Name: EGRESS_NETWORK, Driver: "bridge", CheckDuplicate: true,
      Labels: { [LABEL_MANAGED]: "false", [LABEL_ROLE]: "backup-egress" } }).catch((err: Error) => {
      if (!/already exists/i.test(err.message)) throw err;
    });
  }
}

/**
 * Makes the job's secrets volume, its network and relay (off-host) or the repository's directory
 * (local), and returns the runner. Everything it made is removed by dispose(), and by it alone when
 * this fails half-way.
 */
export async function prepareJob(job: ResticJob): Promise<PreparedJob> {
  const { engine } = job;
  const id = `hf-bkjob-${randomBytes(5).toString("hex")}`;
  // whose data, under a key of its own: a job is never taken for one of the customer's containers
  const labels = { [LABEL_MANAGED]: "false", [LABEL_ROLE]: ROLE_BACKUP_JOB, ...ownedBy(id), [LABEL_BACKUP_OF]: `${job.environment}-${job.customer}` };
  const made = { volume: false, network: false, relay: false };
  const dispose = async () => {
    await removeContainer(engine, id);
    if (made.relay) await removeContainer(engine, `${id}-relay`);
    if (made.network) await engine.getNetwork(id).remove().catch(() => {});
    if (made.volume) await engine.getVolume(`${id}-secrets`).remove({ force: true }).catch(() => {});
  };
  try {
    await engine.createVolume({ Name: `${id}-secrets`, Labels: labels });
    made.volume = true;
    const writer = await engine.createContainer({
      name: `${id}-write`, Image: job.image, Entrypoint: ["/bin/true"], Cmd: [], User: `${APP_UID}:${APP_GID}`, Labels: labels,
      HostConfig: { NetworkMode: "none", Mounts: [{ Type: "volume", Source: `${id}-secrets`, Target: SECRETS_DIR }] },
    });
    try {
      await writer.putArchive(secretFilesTar(SECRETS_DIR, jobSecretFiles(job.repository, job.secrets)), { path: "/run" });
    } finally {
      await writer.remove({ force: true }).catch(() => {});
    }
    const mounts: Dockerode.MountSettings[] = [
      { Type: "volume", Source: `${id}-secrets`, Target: SECRETS_DIR, ReadOnly: true },
      ...job.mounts.map((m) => ({ Type: "volume" as const, Source: m.volume, Target: m.target, ReadOnly: m.readOnly })),
    ];
    let networkMode = "none";
    const relay = relayTarget(job.repository);
    if (job.repository.kind === "local") {
      await prepareLocalRepository(engine, job.image, job.repository.path, labels);
      mounts.push({ Type: "bind", Source: job.repository.path, Target: "/repo", ReadOnly: false });
    } else if (relay) {
      await ensureEgressNetwork(engine);
      // restic retries an unreachable repository for a minute or more: say so at once instead
      await probe(engine, job.image, relay, labels, job.repository);
      await engine.createNetwork({ Name: id, Driver: "bridge", Internal: true, CheckDuplicate: true, Labels: labels });
      made.network = true;
      networkMode = id;
      made.relay = true;
      const relayContainer = await engine.createContainer({
        name: `${id}-relay`, Image: job.image, User: `${APP_UID}:${APP_GID}`, Labels: { ...labels, [LABEL_ROLE]: ROLE_BACKUP_RELAY },
        Entrypoint: [], Cmd: ["socat", `TCP-LISTEN:${relay.port},fork,reuseaddr`, `TCP:${relay.host}:${relay.port},connect-timeout=10`],
        Healthcheck: { Test: ["NONE"] },
        HostConfig: { ...hardened, NetworkMode: EGRESS_NETWORK, Memory: 64 * 1024 * 1024, NanoCpus: 500_000_000, PidsLimit: 64 },
      });
      await engine.getNetwork(id).connect({ Container: relayContainer.id, EndpointConfig: { Aliases: [hostInsideJob(job.repository)] } });
      await relayContainer.start();
    }
    const options = jobOptions(job.repository);
    let runs = 0;
    return {
      id,
      dispose,
      async run(args, timeoutSeconds = 3600) {
        const name = runs++ === 0 ? id : `${id}-${runs}`;
        return runContainer(engine, {
          name, Image: job.image, User: `${APP_UID}:${APP_GID}`, Labels: labels, Entrypoint: [],
          Cmd: ["restic", ...options.args, ...args], Env: options.env, WorkingDir: "/tmp",
          HostConfig: {
            ...hardened, NetworkMode: networkMode, Mounts: mounts,
            Tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=512m" },
            Memory: 1024 * 1024 * 1024, NanoCpus: 1_000_000_000, PidsLimit: 128,
          },
        }, timeoutSeconds);
      },
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** Whether the repository's host answers on its port from that engine (a TCP connection, 10 s at most). */
async function probe(engine: Dockerode, image: string, target: { host: string; port: number }, labels: Record<string, string>, repo: Repository): Promise<void> {
  const result = await runContainer(engine, {
    Image: image, User: `${APP_UID}:${APP_GID}`, Labels: labels, Entrypoint: [],
    Cmd: ["socat", "-T", "5", "-u", "OPEN:/dev/null", `TCP:${target.host}:${target.port},connect-timeout=10`],
    HostConfig: { ...hardened, NetworkMode: EGRESS_NETWORK, Memory: 32 * 1024 * 1024, PidsLimit: 16 },
  }, 30);
  if (result.exitCode !== 0) {
    const why = /refused/i.test(result.stderr) ? "connection refused" : /timed out|timeout/i.test(result.stderr) ? "no answer within 10 s"
      : lastLines(result.stderr, 1).replace(/^.*E /, "");
    throw new Error(`the backup repository ${describeRepository(repo)} cannot be reached from the engine (${target.host}:${target.port}: ${why}); ` +
      "nothing was paused or changed. Check that the backup host runs and that this engine's host may reach it");
  }
}

/**
 * Creates a one-shot container (no healthcheck: a job, not a service), runs it to the end with its
 * output collected, and removes it; past `timeoutSeconds` it is killed and that is an error.
 */
export async function runContainer(engine: Dockerode, opts: Dockerode.ContainerCreateOptions, timeoutSeconds: number): Promise<ResticResult> {
  const container = await engine.createContainer({ ...opts, Healthcheck: { Test: ["NONE"] }, AttachStdout: true, AttachStderr: true });
  try {
    return await runToEnd(container, { timeoutSeconds, what: opts.Cmd?.[0] ?? "the job" });
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
}

/** The last lines of restic's messages, for an error (the one-shot containers' helper). */
export { lastLines };

/** The customer's directory of a local repository, made on the engine's host and given to 1000 (0700). */
async function prepareLocalRepository(engine: Dockerode, image: string, dir: string, labels: Record<string, string>): Promise<void> {
  const r = await runContainer(engine, {
    Image: image, User: "0:0", Entrypoint: [], Cmd: ["sh", "-c", `chown ${APP_UID}:${APP_GID} /repo && chmod 0700 /repo`], Labels: labels,
    // Binds (not Mounts) makes the directory when it is missing
    HostConfig: { ...hardened, CapAdd: ["CHOWN", "FOWNER"], NetworkMode: "none", Binds: [`${dir}:/repo`], Memory: 64 * 1024 * 1024, PidsLimit: 16 },
  }, 60);
  if (r.exitCode !== 0) throw new Error(`preparing the local backup repository ${dir} on the engine's host failed (exit ${r.exitCode}): ${lastLines(r.stderr)}`);
}

/**
 * Removes what jobs of a fleet process on this machine that is no longer running left behind (a
 * kill -9): their containers, networks and secrets volumes. Jobs of live processes are left alone.
 */
export async function sweepJobs(engine: Dockerode, alive: (pid: number) => boolean): Promise<string[]> {
  const host = os.hostname();
  const dead = (ownerLabel: string | undefined) => {
    const [h, pid] = (ownerLabel ?? "").split(":");
    return h === host && pid !== undefined && !alive(Number(pid));
  };
  const removed: string[] = [];
  for (const c of await engine.listContainers({ all: true, filters: { label: [LABEL_JOB] } })) {
    if (dead(c.Labels[LABEL_JOB_OWNER])) { await removeContainer(engine, c.Id); removed.push(c.Names[0]?.replace(/^\//, "") ?? c.Id); }
  }
  for (const n of await engine.listNetworks({ filters: { label: [LABEL_JOB] } })) {
    if (dead(n.Labels?.[LABEL_JOB_OWNER])) { await engine.getNetwork(n.Id).remove().catch(() => {}); removed.push(n.Name); }
  }
  const { Volumes } = await engine.listVolumes({ filters: { label: [LABEL_JOB] } });
  for (const v of Volumes ?? []) {
    if (dead(v.Labels?.[LABEL_JOB_OWNER])) { await engine.getVolume(v.Name).remove({ force: true }).catch(() => {}); removed.push(v.Name); }
  }
  return removed;
}
