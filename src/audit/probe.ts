/**
 * The audit's look inside a running container, without running anything in it (its runtime may have
 * no shell): one short-lived container of fleet's tools image joins the container's PID namespace and
 * reads its main process's /proc entries, and the container's own root filesystem and data volumes
 * through /proc/<pid>/root. The kernel lets it in only as the process's own uid and gid, with no
 * capability the process has and it lacks (ptrace read access), so it runs as that user with no
 * capabilities, no network and a read-only root; nothing is started with more privileges than the
 * audited process has.
 */
import { PassThrough } from "node:stream";
import type Dockerode from "dockerode";
import { ensureToolsImage, TOOLS_IMAGE } from "../engine/toolsImage";
import { streamEnd } from "../engine/oneShot";
import { APP_GID, APP_UID, LABEL_MANAGED, LABEL_ROLE } from "../hardening/names";
import { DEFAULT_RUNTIME } from "../hardening/sandbox";
import type { Probes } from "./checks";

/** LABEL_ROLE of the probe's container: LABEL_MANAGED false, so no audit or listing takes it for a customer */
export const ROLE_AUDIT_PROBE = "audit-probe";
/** the line between the probe's sections (sandboxProbe.ts prints the same) */
export const SEPARATOR = "--hardened-fleet-probe--";
const PROBE_TIMEOUT_MS = 60_000;

/** Interpreters a runtime does not need to run its app, and package managers: exec into the container needs one of them. */
export const SHELLS = ["sh", "bash", "dash", "ash", "rbash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox"];
export const PACKAGE_MANAGERS = ["apt", "apt-get", "apt-cache", "aptitude", "dpkg", "dpkg-deb", "rpm", "yum", "dnf", "microdnf", "apk"];
export const COMPILERS = ["gcc", "cc", "c++", "g++", "clang", "make", "ld"];
/** package managers' caches and lists (their files, a lock file aside) */
export const CACHE_DIRS = ["var/lib/apt/lists", "var/cache/apt/archives", "root/\\.cache/pip", "home/[^/]+/\\.cache/pip", "var/cache/yum", "var/cache/apk"];
/** where a program is found on PATH, /bin and /sbin included when they are directories of their own */
export const BIN_DIRS = "(usr/(local/)?)?s?bin";

/** What the probe needs of a container: its main process's PID as the probe sees it, its data paths, the user to read as. */
export interface ProbeTarget {
  id: string;
  /** the app is PID 1 in its own PID namespace; in the host's, the host PID the engine reports */
  mainPid: number;
  /** where its volumes are mounted (data and secrets) */
  dataPaths: string[];
  /** uid:gid of the container's process: the only user the kernel lets read its /proc/<pid>/root without CAP_SYS_PTRACE */
  user: string;
}

const numericUser = (u: string | undefined) => {
  const m = /^(\d+)(?::(\d+))?$/.exec(u ?? "");
  return m ? `${m[1]}:${m[2] ?? m[1]}` : undefined;
};

/** The probe's view of a container, from its inspect data (and its image's USER, when it sets none). Pure. */
export function probeTarget(info: Dockerode.ContainerInspectInfo, imageUser?: string): ProbeTarget {
  const configured = info.Config.User || imageUser || "";
  return {
    id: info.Id,
    mainPid: info.HostConfig.PidMode === "host" ? info.State.Pid : 1,
    dataPaths: (info.Mounts ?? []).filter((m) => m.Type === "volume").map((m) => m.Destination),
    // root when nothing says otherwise; a user given by name cannot be looked up in the tools image: 1000
    user: configured === "" ? "0:0" : numericUser(configured) ?? `${APP_UID}:${APP_GID}`,
  };
}

const ere = (s: string) => s.replace(/[.+*?^$()[\]{}|\\]/g, "\\$&");
const quote = (p: string) => `'${p.replace(/'/g, "")}'`;

/**
 * The probe's script (sh and GNU find in the tools image): sections separated by a marker line, paths
 * printed as /proc/<pid>/root/... (parseProbeOutput makes them the container's own). The root
 * filesystem is walked once (-xdev: not volumes or tmpfs; symbolic links are not followed, so a
 * link never leads out of the container's tree) for setuid/setgid files (CIS 4.8), shells and package
 * managers, compilers and package caches. Pure.
 */
export function probeScript(t: Pick<ProbeTarget, "mainPid" | "dataPaths">): string {
  const root = `/proc/${t.mainPid}/root`;
  const names = (list: string[]) => `${root}/${BIN_DIRS}/(${list.map(ere).join("|")})`;
  const walk = [
    `\\( -type f -perm /6000 -printf 'setuid /%P\\n' \\)`,
    `\\( -regex '${names([...SHELLS, ...PACKAGE_MANAGERS])}' -printf 'shell /%P\\n' \\)`,
    `\\( -regex '${names(COMPILERS)}' -printf 'tool /%P\\n' \\)`,
    `\\( -type f -regex '${root}/(${CACHE_DIRS.join("|")})/.+' ! -name lock -printf 'tool /%P\\n' \\)`,
  ].join(" , ");
  const sep = `echo ${SEPARATOR}`;
  return [
    `cat /proc/${t.mainPid}/status`, sep,
    `cat /proc/${t.mainPid}/mounts`, sep,
    "grep '^SwapTotal:' /proc/meminfo", sep,
    `(cd ${root} && echo readable) 2>&1`, sep,
    `find ${root}/ -xdev -regextype posix-extended ${walk} 2>/dev/null | head -n 1000`, sep,
    t.dataPaths.length === 0 ? "true"
      : `find ${t.dataPaths.map((p) => quote(`${root}${p}`)).join(" ")} \\( ! -user ${APP_UID} -o ! -group ${APP_GID} \\) -print 2>&1 | head -n 20`,
    "exit 0",
  ].join("\n");
}

/** The probe's output as Probes, every path the container's own (/proc/<pid>/root taken off); throws when a section is missing. Pure. */
export function parseProbeOutput(output: string, mainPid: number): Probes {
  const sections = output.split(`${SEPARATOR}\n`);
  if (sections.length < 6) throw new Error(`the audit's probe printed ${sections.length} of its 6 sections: ${JSON.stringify(output.slice(-300))}`);
  const [procStatus = "", mounts = "", meminfo = "", rootState = "", walk = "", foreign = ""] = sections;
  const own = (text: string) => text.split(`/proc/${mainPid}/root`).join("");
  const found = (kind: string) => walk.split("\n").filter((l) => l.startsWith(`${kind} `))
    .map((l) => own(l.slice(kind.length + 1).replace(/^\/\//, "/"))).sort();
  const lines = (list: string[]) => list.map((l) => `${l}\n`).join("");
  const swap = /^SwapTotal:\s+(\d+)/m.exec(meminfo);
  const readable = rootState.trim() === "readable";
  return {
    procStatus, mounts, swapTotalKb: swap ? Number(swap[1]) : undefined,
    foreignFiles: own(foreign),
    setuidFiles: lines(found("setuid")),
    shells: lines(found("shell")),
    buildLeftovers: lines(found("tool")),
    ...(readable ? {} : {
      rootError: `its root filesystem could not be read as the process's user (${rootState.trim() || "no answer"}): ` +
        "the probe reads it through /proc, which the kernel allows only to the process's own uid and gid",
    }),
  };
}

/** The probe's container: the tools image in the audited container's PID namespace, as its user, with nothing else. Pure. */
export function probeContainerOptions(t: ProbeTarget): Dockerode.ContainerCreateOptions {
  return {
    Image: TOOLS_IMAGE,
    User: t.user,
    Entrypoint: [],
    Cmd: ["sh", "-c", probeScript(t)],
    Labels: { [LABEL_MANAGED]: "false", [LABEL_ROLE]: ROLE_AUDIT_PROBE },
    Healthcheck: { Test: ["NONE"] },
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      // runc, named: on a swarm sandbox node the default is runsc, which cannot join a container's PID namespace
      Runtime: DEFAULT_RUNTIME,
      PidMode: `container:${t.id}`,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges:true"],
      ReadonlyRootfs: true,
      NetworkMode: "none",
      Memory: 64 * 1024 * 1024,
      MemorySwap: 64 * 1024 * 1024,
      PidsLimit: 16,
      AutoRemove: true,
    },
  };
}

/**
 * Probes a running container from the tools image (ensured on `engine` first: a swarm node gets a
 * copy). One container run per audited container; it is removed when it ends.
 */
export async function probe(engine: Dockerode, target: ProbeTarget): Promise<Probes> {
  await ensureToolsImage(engine);
  const container = await engine.createContainer(probeContainerOptions(target));
  let done = false;
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const out = new PassThrough();
    const err = new PassThrough();
    const chunks: Buffer[] = [];
    const errChunks: Buffer[] = [];
    out.on("data", (c: Buffer) => chunks.push(c));
    err.on("data", (c: Buffer) => errChunks.push(c));
    container.modem.demuxStream(stream, out, err);
    // its output ends when it does; AutoRemove removes it then (not waited for: the gate waits on this)
    const ended = streamEnd(stream);
    await container.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the audit's probe of ${target.id.slice(0, 12)} did not finish within ${PROBE_TIMEOUT_MS / 1000}s`)), PROBE_TIMEOUT_MS);
    });
    try {
      await Promise.race([ended, timeout]);
    } finally {
      clearTimeout(timer);
    }
    const output = Buffer.concat(chunks).toString("utf8");
    let probes: Probes;
    try {
      probes = parseProbeOutput(output, target.mainPid);
    } catch (e) {
      throw new Error(`${(e as Error).message}; its errors: ${Buffer.concat(errChunks).toString("utf8").trim().slice(-300) || "none"}`);
    }
    done = true;
    return probes;
  } finally {
    // one that failed to start (its container stopped meanwhile) or did not finish
    if (!done) await container.remove({ force: true }).catch(() => {});
  }
}
