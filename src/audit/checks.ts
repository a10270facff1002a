/**
 * The hardening checks of `fleet audit`: RULES, a list of values `{ id, describes, appliesTo, run }`.
 * `run` is a pure function of what the engine reports (container and image inspect) and what was
 * probed inside the running container; `appliesTo` says whether a rule judges fleet's own containers,
 * Swarm tasks' containers, or both, so no rule asks which one it has.
 */
import type Dockerode from "dockerode";
import { APP_GID, APP_UID, LABEL_CAP_REASONS, LABEL_ROLE, LABEL_SHELL_REASON, ROLE_EDGE, ROLE_LOGS } from "../hardening/names";
import { DEFAULT_RUNTIME, expectedRuntime, isSandboxRuntime, LABEL_SANDBOX, runtimeOf } from "../hardening/sandbox";

export interface Probes {
  /** /proc/1/status of the container's main process */
  procStatus: string;
  /** paths in the data volumes not owned by 1000:1000 (or unreadable), one per line */
  foreignFiles: string;
  /** compilers, package managers' caches and lists found in the image, one per line */
  buildLeftovers: string;
  /** /proc/1/mounts of the container's main process: the real options of its tmpfs mounts */
  mounts?: string;
  /** SwapTotal of the node (from /proc/meminfo inside the container), in kB */
  swapTotalKb?: number;
  /** files with the setuid or setgid bit on the container's root filesystem (as its own user sees it), one per line */
  setuidFiles: string;
  /** shells and package managers in the image's bin directories (sh, bash, dash, apt, dpkg ...), one per line */
  shells: string;
  /** why the root filesystem could not be read (setuidFiles, shells and buildLeftovers are then unknown) */
  rootError?: string;
}

/** A Swarm task's container (target: swarm): Swarm restarts it, and the daemon sets no-new-privileges. */
export const SWARM_TASK_LABEL = "com.docker.swarm.task.id";

/** What a rule judges: a container fleet runs itself (target: docker, the edge proxy), or a Swarm task's container. */
export type Subject = "container" | "swarm-task";
export const SUBJECTS: readonly Subject[] = ["container", "swarm-task"];

/** A Swarm task's container carries the task label; every other container is fleet's own. Pure. */
export function subjectOf(c: Dockerode.ContainerInspectInfo): Subject {
  return c.Config.Labels?.[SWARM_TASK_LABEL] !== undefined ? "swarm-task" : "container";
}

export interface Verdict {
  ok: boolean;
  detail: string;
}

export interface CheckResult extends Verdict {
  id: string;
}

/** What every rule reads: the container's and its image's inspect data, and the probes from inside (when it runs). */
export interface AuditContext {
  container: Dockerode.ContainerInspectInfo;
  image: Dockerode.ImageInspectInfo;
  /** undefined when the container is not running */
  probes: Probes | undefined;
}

/**
 * One audit rule, a value: the check's id (a column of `fleet audit`), what it verifies, the subjects
 * it judges, and the judgement itself. A check judged differently on a Swarm task has one rule per
 * subject, with the same id and description, side by side in RULES. Pure.
 */
export interface Rule {
  id: string;
  describes: string;
  appliesTo: readonly Subject[];
  run(ctx: AuditContext): Verdict;
}

const ANY: readonly Subject[] = SUBJECTS;
const CONTAINERS: readonly Subject[] = ["container"];
const SWARM_TASKS: readonly Subject[] = ["swarm-task"];

const SENSITIVE_HOST_PATHS = ["/", "/etc", "/proc", "/sys", "/dev", "/root", "/home", "/boot", "/var/run", "/run", "/var/lib/docker", "/usr"];

const CAP_BITS: Record<string, number> = {
  CHOWN: 0, DAC_OVERRIDE: 1, DAC_READ_SEARCH: 2, FOWNER: 3, FSETID: 4, KILL: 5, SETGID: 6, SETUID: 7, SETPCAP: 8,
  LINUX_IMMUTABLE: 9, NET_BIND_SERVICE: 10, NET_BROADCAST: 11, NET_ADMIN: 12, NET_RAW: 13, IPC_LOCK: 14, IPC_OWNER: 15,
  SYS_MODULE: 16, SYS_RAWIO: 17, SYS_CHROOT: 18, SYS_PTRACE: 19, SYS_PACCT: 20, SYS_ADMIN: 21, SYS_BOOT: 22,
  SYS_NICE: 23, SYS_RESOURCE: 24, SYS_TIME: 25, SYS_TTY_CONFIG: 26, MKNOD: 27, LEASE: 28, AUDIT_WRITE: 29,
  AUDIT_CONTROL: 30, SETFCAP: 31,
};

export function capMask(names: string[]): bigint {
  return names.reduce((mask, n) => {
    const name = n.replace(/^CAP_/, "");
    // own keys only: a label naming 'constructor' must not find Object.prototype's
    const bit = Object.hasOwn(CAP_BITS, name) ? CAP_BITS[name] : undefined;
    return bit === undefined ? mask : mask | (1n << BigInt(bit));
  }, 0n);
}

/** Capability names the container's label gives reasons for ("NAME: reason; NAME: reason"). */
export function reasonedCaps(labels: Record<string, string> | undefined): string[] {
  const text = labels?.[LABEL_CAP_REASONS] ?? "";
  return text.split(";").map((s) => s.split(":")[0]!.trim()).filter(Boolean);
}

function procField(status: string, field: string): string | undefined {
  return new RegExp(`^${field}:\\s*(.*)$`, "m").exec(status)?.[1]?.trim();
}

const verdict = (problems: string[], okDetail: string) =>
  ({ ok: problems.length === 0, detail: problems.length === 0 ? okDetail : problems.join("; ") });
const notRunning = { ok: false, detail: "container is not running, so it could not be checked inside" };
const EXPECTED_USER = `${APP_UID}:${APP_GID}`;
/** the probes of the root filesystem, or why there are none */
const rootUnread = (probes: Probes | undefined) => (!probes ? notRunning : probes.rootError ? { ok: false, detail: probes.rootError } : undefined);
const listed = (text: string) => text.split("\n").map((f) => f.trim()).filter(Boolean);

/** One of the container's security options is `<name>=unconfined` (or the old `<name>:unconfined`). */
const unconfined = (c: Dockerode.ContainerInspectInfo, name: string) =>
  (c.HostConfig.SecurityOpt ?? []).some((o: string) => o === `${name}=unconfined` || o === `${name}:unconfined`);

/** Namespace modes that share a namespace with the host, or with another container (`container:<id>`). */
const sharedNamespace = (mode: string | undefined) => mode === "host" || (mode ?? "").startsWith("container:");

/** The checks judged differently on a Swarm task: id and description, each written once. */
const NO_NEW_PRIVILEGES = {
  id: "no-new-privileges",
  describes: "no-new-privileges: the container's security option (on a swarm, the node's daemon-wide setting), and NoNewPrivs 1 in its process",
};
const LIMITS = {
  id: "limits",
  describes: "memory (swap equal), CPU and PIDs limits set; no nproc ulimit (it counts per host UID, shared by every customer), but in a sandbox, whose own kernel counts it",
};
const NETWORK = { id: "network", describes: "on its own network, not the default bridge (docker0) or the host's" };
const NAMESPACES = {
  id: "namespaces",
  describes: "its own network, PID, IPC, UTS and cgroup namespaces: none is the host's or another container's (container:<id>), user namespace not host",
};
const RESTART = {
  id: "restart",
  describes: "restart policy on-failure with at most 5 retries (on a swarm: Swarm restarts the task, with a delay)",
};

const optionNoNewPrivileges = (c: Dockerode.ContainerInspectInfo) =>
  (c.HostConfig.SecurityOpt ?? []).some((o: string) => /^no-new-privileges(:true|=true)?$/.test(o));

/** The limits every subject must have; `swap` words the problem when swap differs from memory (undefined: none). */
function limitsVerdict(c: Dockerode.ContainerInspectInfo, swap: () => string | undefined): Verdict {
  const hc = c.HostConfig;
  const problems: string[] = [];
  if (!hc.Memory) problems.push("no memory limit");
  else if (hc.MemorySwap !== hc.Memory) {
    const problem = swap();
    if (problem) problems.push(problem);
  }
  if (!hc.NanoCpus && !hc.CpuQuota) problems.push("no CPU limit");
  // the per-container PIDs cgroup is the per-tenant bound on processes and threads
  if (!hc.PidsLimit || hc.PidsLimit <= 0) problems.push("no PIDs limit");
  // RLIMIT_NPROC counts every process of the UID on the host: one customer's threads would stop the
  // others' fork; a sandbox (runsc) counts it in its own kernel, for that customer alone
  const nproc = (hc.Ulimits ?? []).find((u: { Name?: string }) => u.Name === "nproc") as { Soft?: number } | undefined;
  if (nproc && !isSandboxRuntime(hc.Runtime)) problems.push(`ulimit nproc ${nproc.Soft}: counted per host UID, so other customers' processes use it up; remove it (the PIDs limit bounds each container)`);
  return verdict(problems, `mem ${Math.round((hc.Memory ?? 0) / 1048576)}MiB, cpu ${(hc.NanoCpus ?? 0) / 1e9}, pids ${hc.PidsLimit}`);
}

/** On its own network; `badModes` are the network modes that fail. */
function networkVerdict(c: Dockerode.ContainerInspectInfo, badModes: readonly string[]): Verdict {
  const problems: string[] = [];
  const mode = c.HostConfig.NetworkMode ?? "";
  const nets = Object.keys(c.NetworkSettings?.Networks ?? {});
  if (badModes.includes(mode)) problems.push(`network mode is ${mode}`);
  if (nets.length === 0) problems.push("on no network");
  if (nets.includes("bridge")) problems.push("attached to the default bridge (docker0)");
  if (nets.includes("host")) problems.push("attached to the host network");
  return verdict(problems, nets.join(","));
}

/** The namespaces no subject may share: network, PID, IPC, UTS with the host or another container, the host's user namespace. */
function sharedNamespaces(c: Dockerode.ContainerInspectInfo): string[] {
  const hc = c.HostConfig;
  const problems: string[] = [];
  for (const [name, mode] of [["network", hc.NetworkMode], ["pid", hc.PidMode], ["ipc", hc.IpcMode], ["uts", hc.UTSMode]] as const) {
    if (sharedNamespace(mode)) problems.push(`${name}=${mode}`);
  }
  if (hc.UsernsMode === "host") problems.push("userns=host");
  return problems;
}

const cgroupnsMode = (c: Dockerode.ContainerInspectInfo) => (c.HostConfig as { CgroupnsMode?: string }).CgroupnsMode;

/** Every rule the audit runs, in order: the rules of a subject give each check id once, in the same order. */
export const RULES: readonly Rule[] = [
  {
    id: "image-user",
    describes: "the image's USER is 1000:1000",
    appliesTo: ANY,
    run: ({ image }) => verdict(image.Config.User === EXPECTED_USER ? [] : [`image USER is '${image.Config.User || "root"}'`], EXPECTED_USER),
  },
  {
    id: "runtime-user",
    describes: "the container runs as 1000:1000 and so does its main process",
    appliesTo: ANY,
    run: ({ container: c, probes }) => {
      const problems: string[] = [];
      if (c.Config.User !== EXPECTED_USER) problems.push(`container user is '${c.Config.User || "image default"}'`);
      if (probes) {
        const uid = procField(probes.procStatus, "Uid")?.split(/\s+/);
        const gid = procField(probes.procStatus, "Gid")?.split(/\s+/);
        if (!uid || uid.some((u) => u !== String(APP_UID))) problems.push(`process uids are ${uid?.join(",") ?? "unknown"}`);
        if (!gid || gid.some((g) => g !== String(APP_GID))) problems.push(`process gids are ${gid?.join(",") ?? "unknown"}`);
      }
      return probes || problems.length ? verdict(problems, `${EXPECTED_USER}, process too`) : notRunning;
    },
  },
  {
    id: "capabilities",
    describes: "CapDrop ALL, CapAdd only what config states a reason for, CapEff of the process no more than that",
    appliesTo: ANY,
    run: ({ container: c, probes }) => {
      const hc = c.HostConfig;
      const problems: string[] = [];
      const allowed = reasonedCaps(c.Config.Labels);
      if (!(hc.CapDrop ?? []).map((x: string) => x.toUpperCase()).includes("ALL")) problems.push(`CapDrop is ${JSON.stringify(hc.CapDrop ?? [])}, not ALL`);
      const unexplained = (hc.CapAdd ?? []).map((x: string) => x.replace(/^CAP_/, "")).filter((x: string) => !allowed.includes(x));
      if (unexplained.length) problems.push(`CapAdd ${unexplained.join(",")} without a stated reason`);
      if (probes) {
        const eff = BigInt(`0x${procField(probes.procStatus, "CapEff") ?? "ffffffffffffffff"}`);
        const extra = eff & ~capMask(allowed);
        if (extra !== 0n) problems.push(`process CapEff is ${eff.toString(16)}`);
      }
      return verdict(problems, allowed.length ? `drop ALL, add ${allowed.join(",")} (reasoned)` : "drop ALL, CapEff 0");
    },
  },
  {
    ...NO_NEW_PRIVILEGES,
    appliesTo: CONTAINERS,
    run: ({ container: c, probes }) => {
      const problems: string[] = [];
      if (!optionNoNewPrivileges(c)) problems.push("no-new-privileges is not set");
      const nnp = probes ? procField(probes.procStatus, "NoNewPrivs") : undefined;
      if (probes && nnp !== "1") problems.push(`the process has NoNewPrivs ${nnp ?? "unknown"}`);
      return verdict(problems, "set");
    },
  },
  {
    ...NO_NEW_PRIVILEGES,
    appliesTo: SWARM_TASKS,
    // a Swarm service cannot ask for it: the node's daemon sets it for every container, seen in the process
    run: ({ container: c, probes }) => {
      const problems: string[] = [];
      const nnp = probes ? procField(probes.procStatus, "NoNewPrivs") : undefined;
      if (probes && nnp !== "1") problems.push(`the process has NoNewPrivs ${nnp ?? "unknown"}: set no-new-privileges in this node's daemon config`);
      if (!probes) problems.push("container is not running, so its process could not be checked");
      return verdict(problems, optionNoNewPrivileges(c) ? "set" : "set daemon-wide, NoNewPrivs 1");
    },
  },
  {
    id: "seccomp",
    describes: "the engine's seccomp filter applies: no seccomp=unconfined, and the process runs filtered (Seccomp 2); in a sandbox, gVisor's own filter",
    appliesTo: ANY,
    run: ({ container: c, probes }) => {
      const problems: string[] = [];
      if (unconfined(c, "seccomp")) problems.push("seccomp=unconfined: the container may make every system call");
      // in a sandbox the app's system calls go to gVisor's kernel, never the host's; gVisor filters
      // what its own kernel asks of the host, in place of the engine's profile (docs/sandbox.md)
      if (isSandboxRuntime(c.HostConfig.Runtime)) return verdict(problems, "its calls go to the sandbox's kernel, filtered by gVisor's own");
      const mode = probes ? procField(probes.procStatus, "Seccomp") : undefined;
      // a kernel without seccomp prints no Seccomp line at all
      if (mode !== undefined && mode !== "2") problems.push(`the process has Seccomp ${mode} (no filter)`);
      return verdict(problems, mode === "2" ? "filtered (Seccomp 2)" : "not unconfined");
    },
  },
  {
    id: "apparmor",
    describes: "no apparmor=unconfined (the engine's profile applies where the kernel has AppArmor)",
    appliesTo: ANY,
    run: ({ container: c }) => {
      const problems: string[] = [];
      if (unconfined(c, "apparmor")) problems.push("apparmor=unconfined");
      else if (c.AppArmorProfile === "unconfined") problems.push("AppArmor profile is unconfined");
      return verdict(problems, c.AppArmorProfile || "not unconfined (no AppArmor on this host)");
    },
  },
  {
    id: "read-only-root",
    describes: "read-only root filesystem, writable paths only on noexec tmpfs",
    appliesTo: ANY,
    run: ({ container: c, probes }) => {
      const hc = c.HostConfig;
      const problems: string[] = [];
      if (!hc.ReadonlyRootfs) problems.push("root filesystem is writable");
      // a Map: mount points are container paths, never looked up on an object's prototype
      const tmpfs = new Map<string, string>(Object.entries(hc.Tmpfs ?? {}));
      // a Swarm task's tmpfs are mounts (the engine mounts every tmpfs noexec,nosuid,nodev unless told otherwise)
      for (const m of (hc.Mounts ?? []) as { Type?: string; Target?: string }[]) if (m.Type === "tmpfs" && m.Target && !tmpfs.has(m.Target)) tmpfs.set(m.Target, "");
      if (probes?.mounts) {
        for (const line of probes.mounts.split("\n")) {
          const [, target, type, opts] = line.split(" ");
          if (type === "tmpfs" && target && tmpfs.get(target) === "") tmpfs.set(target, opts ?? "");
        }
      }
      if (!tmpfs.has("/tmp")) problems.push("no tmpfs on /tmp");
      for (const [p, opts] of tmpfs) if (!/\bnoexec\b/.test(opts)) problems.push(`tmpfs ${p} is not noexec`);
      return verdict(problems, `read-only, tmpfs ${[...tmpfs.keys()].join(",")}`);
    },
  },
  {
    ...LIMITS,
    appliesTo: CONTAINERS,
    run: ({ container: c }) => limitsVerdict(c, () => `swap (${c.HostConfig.MemorySwap}) differs from memory (${c.HostConfig.Memory})`),
  },
  {
    ...LIMITS,
    appliesTo: SWARM_TASKS,
    // a Swarm service cannot limit swap (the engine gives a task twice its memory): its node must have none
    run: ({ container: c, probes }) => limitsVerdict(c, () => {
      const swapTotal = probes?.swapTotalKb;
      return swapTotal === undefined || swapTotal > 0
        ? `the node has ${swapTotal === undefined ? "unknown" : `${swapTotal} kB of`} swap, which a Swarm service cannot limit: turn swap off on swarm nodes (swapoff -a, and in /etc/fstab)`
        : undefined;
    }),
  },
  {
    id: "healthcheck",
    describes: "a healthcheck in the image and at runtime, and the container is healthy",
    appliesTo: ANY,
    run: ({ container: c, image }) => {
      const problems: string[] = [];
      const imageTest = image.Config.Healthcheck?.Test ?? [];
      if (!imageTest.length || imageTest[0] === "NONE") problems.push("no HEALTHCHECK in the image");
      const runtime = c.Config.Healthcheck?.Test ?? imageTest;
      if (!runtime.length || runtime[0] === "NONE") problems.push("healthcheck disabled at runtime");
      const status = c.State.Health?.Status ?? "none";
      if (status !== "healthy") problems.push(`health is ${status}`);
      return verdict(problems, "healthy");
    },
  },
  {
    id: "ports",
    describes: "a customer's container publishes no port (its traffic comes through the edge proxy); the proxy's are bound to a specific address",
    appliesTo: ANY,
    run: ({ container: c }) => {
      const hc = c.HostConfig;
      const problems: string[] = [];
      const shown = Object.values(hc.PortBindings ?? {}).flat().map((b) => `${(b as { HostIp: string }).HostIp}:${(b as { HostPort: string }).HostPort}`);
      const isEdge = c.Config.Labels?.[LABEL_ROLE] === ROLE_EDGE;
      if (!isEdge && shown.length > 0) problems.push(`publishes ${shown.join(",")}: only the edge proxy publishes ports`);
      for (const [port, bindings] of Object.entries(hc.PortBindings ?? {})) {
        for (const b of (bindings ?? []) as { HostIp?: string; HostPort?: string }[]) {
          if (!b.HostIp || b.HostIp === "0.0.0.0" || b.HostIp === "::") problems.push(`${port} is published on all addresses`);
        }
      }
      if (hc.PublishAllPorts) problems.push("PublishAllPorts is on");
      return verdict(problems, shown.join(",") || "none published");
    },
  },
  { ...NETWORK, appliesTo: CONTAINERS, run: ({ container: c }) => networkVerdict(c, ["bridge", "host", "default"]) },
  // a Swarm task's mode says "default" whatever it joins: what counts is the networks it is on
  { ...NETWORK, appliesTo: SWARM_TASKS, run: ({ container: c }) => networkVerdict(c, ["bridge", "host"]) },
  {
    ...NAMESPACES,
    appliesTo: CONTAINERS,
    run: ({ container: c }) => {
      const problems = sharedNamespaces(c);
      // the engine's default on cgroup v1 is the host's
      if (cgroupnsMode(c) === "host") problems.push("cgroupns=host: the container sees the host's cgroup hierarchy");
      return verdict(problems, "private");
    },
  },
  {
    ...NAMESPACES,
    appliesTo: SWARM_TASKS,
    // a Swarm service cannot choose its cgroup namespace: the node's default-cgroupns-mode does
    run: ({ container: c }) => verdict(sharedNamespaces(c), cgroupnsMode(c) === "host" ? "private (cgroupns: the node's default)" : "private"),
  },
  {
    id: "host-isolation",
    describes: "not privileged; no host devices, docker.sock or sensitive host paths",
    appliesTo: ANY,
    run: ({ container: c }) => {
      const hc = c.HostConfig;
      const problems: string[] = [];
      if (hc.Privileged) problems.push("privileged");
      if ((hc.Devices ?? []).length) problems.push(`devices ${(hc.Devices ?? []).map((d: { PathOnHost: string }) => d.PathOnHost).join(",")}`);
      for (const m of c.Mounts ?? []) {
        if (m.Source?.includes("docker.sock")) problems.push(`docker.sock mounted at ${m.Destination}`);
        else if (m.Type === "bind" && SENSITIVE_HOST_PATHS.some((p) => m.Source === p || (p !== "/" && m.Source?.startsWith(`${p}/`)))) {
          problems.push(`host path ${m.Source} mounted at ${m.Destination}`);
        }
      }
      return verdict(problems, "isolated");
    },
  },
  {
    ...RESTART,
    appliesTo: CONTAINERS,
    run: ({ container: c }) => {
      const policy = c.HostConfig.RestartPolicy ?? { Name: "" };
      const problems: string[] = [];
      if (policy.Name !== "on-failure") problems.push(`restart policy is '${policy.Name || "no"}'`);
      else if ((policy.MaximumRetryCount ?? 0) > 5 || (policy.MaximumRetryCount ?? 0) === 0) problems.push(`on-failure retries ${policy.MaximumRetryCount || "unlimited"}`);
      return verdict(problems, `on-failure:${policy.MaximumRetryCount}`);
    },
  },
  { ...RESTART, appliesTo: SWARM_TASKS, run: () => verdict([], "Swarm restarts the task (service restart policy, with a delay)") },
  {
    id: "runtime",
    describes: "runs under the runtime its plan names: runsc (its own gVisor kernel) for a sandboxed plan, the engine's default runc otherwise",
    appliesTo: ANY,
    run: ({ container: c }) => {
      const wanted = expectedRuntime(c.Config.Labels);
      const has = runtimeOf(c.HostConfig);
      const sandbox = c.Config.Labels?.[LABEL_SANDBOX];
      return verdict(has === wanted ? [] : [`runs under ${has}, but ${sandbox ? `its plan's sandbox (${sandbox}) needs ${wanted}` : `its plan is not sandboxed (${wanted})`}` +
        (c.Config.Labels?.[SWARM_TASK_LABEL] !== undefined ? ": a Swarm task runs under its node's default runtime, so its node is of the wrong kind (docs/sandbox.md)" : "")],
      wanted === DEFAULT_RUNTIME ? DEFAULT_RUNTIME : `${wanted} (${sandbox} sandbox)`);
    },
  },
  {
    id: "data-ownership",
    describes: "files and directories in the data volumes are owned by 1000:1000",
    appliesTo: ANY,
    run: ({ probes }) => !probes ? notRunning : verdict(
      probes.foreignFiles.trim() ? [`not owned by 1000:1000: ${probes.foreignFiles.trim().split("\n").slice(0, 5).join(", ")}`] : [],
      "all owned by 1000:1000"),
  },
  {
    id: "no-build-tools",
    describes: "no compiler, package-manager cache or package lists in the image",
    appliesTo: ANY,
    run: ({ probes }) => rootUnread(probes) ?? verdict(
      probes!.buildLeftovers.trim() ? [`found ${listed(probes!.buildLeftovers).slice(0, 5).join(", ")}`] : [], "none"),
  },
  {
    id: "no-setuid",
    describes: "no setuid or setgid file on the root filesystem (CIS 4.8)",
    appliesTo: ANY,
    run: ({ probes }) => {
      const unread = rootUnread(probes);
      if (unread) return unread;
      const files = listed(probes!.setuidFiles);
      const shown = files.length > 10 ? [...files.slice(0, 10), `and ${files.length - 10} more`] : files;
      return verdict(files.length ? [`setuid/setgid: ${shown.join(", ")} (remove the bits: chmod a-s, as the hardened Dockerfile does)`] : [], "none");
    },
  },
  {
    id: "no-shell",
    describes: "no shell or package manager in the runtime (sh, bash, dash, apt, dpkg), unless the image's " +
      `${LABEL_SHELL_REASON} label says why it keeps one; not judged on fleet's own edge proxy and log collector ` +
      "(infrastructure images on Debian bases that fleet itself execs into: the proxy's CA root, the collector's log files)",
    appliesTo: ANY,
    run: ({ container: c, image, probes }) => {
      const role = c.Config.Labels?.[LABEL_ROLE];
      if (role === ROLE_EDGE || role === ROLE_LOGS) return verdict([], `not judged: fleet's own ${role} (fleet execs into it)`);
      const unread = rootUnread(probes);
      if (unread) return unread;
      const reason = image.Config.Labels?.[LABEL_SHELL_REASON]?.trim();
      const found = listed(probes!.shells);
      if (found.length && reason) return verdict([], `shell kept: ${reason}`);
      return verdict(found.length ? [`found ${found.join(", ")}: the runtime needs none of them (fleet's own jobs run from its tools image); ` +
        `remove them, or label the image ${LABEL_SHELL_REASON}=<why it keeps one>`] : [], "none");
    },
  },
];

/** The rules that judge `subject`, in order. */
export function rulesFor(subject: Subject): Rule[] {
  return RULES.filter((r) => r.appliesTo.includes(subject));
}

/** Every check's id and what it verifies, in order (for --help and docs/hardening.md). */
export const CHECKS: Readonly<Record<string, string>> = Object.fromEntries(RULES.map((r) => [r.id, r.describes]));

/** The audit of one container: the rules of its subject, each a result with the rule's id. Pure. */
export function runChecks(c: Dockerode.ContainerInspectInfo, image: Dockerode.ImageInspectInfo, probes: Probes | undefined): CheckResult[] {
  const ctx: AuditContext = { container: c, image, probes };
  return rulesFor(subjectOf(c)).map((rule) => ({ id: rule.id, ...rule.run(ctx) }));
}
