/**
 * The hardening checks of `fleet audit`, as a pure function of what the engine reports
 * (container and image inspect) and what was probed inside the running container.
 */
import type Dockerode from "dockerode";
import { APP_GID, APP_UID, LABEL_CAP_REASONS, LABEL_ROLE, ROLE_EDGE } from "../hardening/names";

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
}

/** A Swarm task's container (target: swarm): Swarm restarts it, and the daemon sets no-new-privileges. */
export const SWARM_TASK_LABEL = "com.docker.swarm.task.id";

export interface CheckResult {
  id: string;
  ok: boolean;
  detail: string;
}

/** Every check the audit runs, in order, with what it verifies (for --help and the README). */
export const CHECKS: Record<string, string> = {
  "image-user": "the image's USER is 1000:1000",
  "runtime-user": "the container runs as 1000:1000 and so does its main process",
  "capabilities": "CapDrop ALL, CapAdd only what config states a reason for, CapEff of the process no more than that",
  "no-new-privileges": "no-new-privileges: the container's security option (on a swarm, the node's daemon-wide setting), and NoNewPrivs 1 in its process",
  "read-only-root": "read-only root filesystem, writable paths only on noexec tmpfs",
  "limits": "memory (swap equal), CPU and PIDs limits set",
  "healthcheck": "a healthcheck in the image and at runtime, and the container is healthy",
  "ports": "a customer's container publishes no port (its traffic comes through the edge proxy); the proxy's are bound to a specific address",
  "network": "on its own network, not the default bridge (docker0) or the host's",
  "host-isolation": "not privileged; no host namespaces, devices, docker.sock or sensitive host paths",
  "restart": "restart policy on-failure with at most 5 retries (on a swarm: Swarm restarts the task, with a delay)",
  "data-ownership": "files and directories in the data volumes are owned by 1000:1000",
  "no-build-tools": "no compiler, package-manager cache or package lists in the image",
};

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
    const bit = CAP_BITS[n.replace(/^CAP_/, "")];
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

const result = (id: string, problems: string[], okDetail: string): CheckResult =>
  ({ id, ok: problems.length === 0, detail: problems.length === 0 ? okDetail : problems.join("; ") });

export function runChecks(c: Dockerode.ContainerInspectInfo, image: Dockerode.ImageInspectInfo, probes: Probes | undefined): CheckResult[] {
  const hc = c.HostConfig;
  const expectedUser = `${APP_UID}:${APP_GID}`;
  const out: CheckResult[] = [];
  const needsProbe = (id: string) => ({ id, ok: false, detail: "container is not running, so it could not be checked inside" });

  out.push(result("image-user", image.Config.User === expectedUser ? [] : [`image USER is '${image.Config.User || "root"}'`], expectedUser));

  {
    const problems: string[] = [];
    if (c.Config.User !== expectedUser) problems.push(`container user is '${c.Config.User || "image default"}'`);
    if (probes) {
      const uid = procField(probes.procStatus, "Uid")?.split(/\s+/);
      const gid = procField(probes.procStatus, "Gid")?.split(/\s+/);
      if (!uid || uid.some((u) => u !== String(APP_UID))) problems.push(`process uids are ${uid?.join(",") ?? "unknown"}`);
      if (!gid || gid.some((g) => g !== String(APP_GID))) problems.push(`process gids are ${gid?.join(",") ?? "unknown"}`);
    }
    out.push(probes || problems.length ? result("runtime-user", problems, `${expectedUser}, process too`) : needsProbe("runtime-user"));
  }

  {
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
    out.push(result("capabilities", problems, allowed.length ? `drop ALL, add ${allowed.join(",")} (reasoned)` : "drop ALL, CapEff 0"));
  }

  const swarmTask = c.Config.Labels?.[SWARM_TASK_LABEL] !== undefined;
  {
    const problems: string[] = [];
    const optionSet = (hc.SecurityOpt ?? []).some((o: string) => /^no-new-privileges(:true|=true)?$/.test(o));
    // a Swarm service cannot ask for it: the node's daemon sets it for every container, seen in the process
    if (!optionSet && !swarmTask) problems.push("no-new-privileges is not set");
    const nnp = probes ? procField(probes.procStatus, "NoNewPrivs") : undefined;
    if (probes && nnp !== "1") problems.push(`the process has NoNewPrivs ${nnp ?? "unknown"}${swarmTask ? ": set no-new-privileges in this node's daemon config" : ""}`);
    if (!probes && swarmTask) problems.push("container is not running, so its process could not be checked");
    out.push(result("no-new-privileges", problems, optionSet ? "set" : "set daemon-wide, NoNewPrivs 1"));
  }

  {
    const problems: string[] = [];
    if (!hc.ReadonlyRootfs) problems.push("root filesystem is writable");
    const tmpfs = { ...(hc.Tmpfs ?? {}) } as Record<string, string>;
    // a Swarm task's tmpfs are mounts (the engine mounts every tmpfs noexec,nosuid,nodev unless told otherwise)
    for (const m of (hc.Mounts ?? []) as { Type?: string; Target?: string }[]) if (m.Type === "tmpfs" && m.Target) tmpfs[m.Target] ??= "";
    if (probes?.mounts) {
      for (const line of probes.mounts.split("\n")) {
        const [, target, type, opts] = line.split(" ");
        if (type === "tmpfs" && target && target in tmpfs && tmpfs[target] === "") tmpfs[target] = opts ?? "";
      }
    }
    if (!("/tmp" in tmpfs)) problems.push("no tmpfs on /tmp");
    for (const [p, opts] of Object.entries(tmpfs)) if (!/\bnoexec\b/.test(opts)) problems.push(`tmpfs ${p} is not noexec`);
    out.push(result("read-only-root", problems, `read-only, tmpfs ${Object.keys(tmpfs).join(",")}`));
  }

  {
    const problems: string[] = [];
    const swapTotal = probes?.swapTotalKb;
    if (!hc.Memory) problems.push("no memory limit");
    else if (hc.MemorySwap !== hc.Memory) {
      // a Swarm service cannot limit swap (the engine gives a task twice its memory): its node must have none
      if (!swarmTask) problems.push(`swap (${hc.MemorySwap}) differs from memory (${hc.Memory})`);
      else if (swapTotal === undefined || swapTotal > 0) {
        problems.push(`the node has ${swapTotal === undefined ? "unknown" : `${swapTotal} kB of`} swap, which a Swarm service cannot limit: turn swap off on swarm nodes (swapoff -a, and in /etc/fstab)`);
      }
    }
    if (!hc.NanoCpus && !hc.CpuQuota) problems.push("no CPU limit");
    if (!hc.PidsLimit || hc.PidsLimit <= 0) problems.push("no PIDs limit");
    out.push(result("limits", problems, `mem ${Math.round((hc.Memory ?? 0) / 1048576)}MiB, cpu ${(hc.NanoCpus ?? 0) / 1e9}, pids ${hc.PidsLimit}`));
  }

  {
    const problems: string[] = [];
    const imageTest = image.Config.Healthcheck?.Test ?? [];
    if (!imageTest.length || imageTest[0] === "NONE") problems.push("no HEALTHCHECK in the image");
    const runtime = c.Config.Healthcheck?.Test ?? imageTest;
    if (!runtime.length || runtime[0] === "NONE") problems.push("healthcheck disabled at runtime");
    const status = c.State.Health?.Status ?? "none";
    if (status !== "healthy") problems.push(`health is ${status}`);
    out.push(result("healthcheck", problems, "healthy"));
  }

  {
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
    out.push(result("ports", problems, shown.join(",") || "none published"));
  }

  {
    const problems: string[] = [];
    const mode = hc.NetworkMode ?? "";
    const nets = Object.keys(c.NetworkSettings?.Networks ?? {});
    // a Swarm task's mode says "default" whatever it joins: what counts is the networks it is on
    if (["bridge", "host"].includes(mode) || (mode === "default" && !swarmTask)) problems.push(`network mode is ${mode}`);
    if (nets.length === 0) problems.push("on no network");
    if (nets.includes("bridge")) problems.push("attached to the default bridge (docker0)");
    if (nets.includes("host")) problems.push("attached to the host network");
    out.push(result("network", problems, nets.join(",")));
  }

  {
    const problems: string[] = [];
    if (hc.Privileged) problems.push("privileged");
    for (const [field, value] of [["PidMode", hc.PidMode], ["IpcMode", hc.IpcMode], ["UTSMode", hc.UTSMode], ["UsernsMode", hc.UsernsMode], ["NetworkMode", hc.NetworkMode]] as const) {
      if (value === "host") problems.push(`${field} host`);
    }
    if ((hc.Devices ?? []).length) problems.push(`devices ${(hc.Devices ?? []).map((d: { PathOnHost: string }) => d.PathOnHost).join(",")}`);
    for (const m of c.Mounts ?? []) {
      if (m.Source?.includes("docker.sock")) problems.push(`docker.sock mounted at ${m.Destination}`);
      else if (m.Type === "bind" && SENSITIVE_HOST_PATHS.some((p) => m.Source === p || (p !== "/" && m.Source?.startsWith(`${p}/`)))) {
        problems.push(`host path ${m.Source} mounted at ${m.Destination}`);
      }
    }
    out.push(result("host-isolation", problems, "isolated"));
  }

  {
    const policy = hc.RestartPolicy ?? { Name: "" };
    const problems: string[] = [];
    if (policy.Name !== "on-failure") problems.push(`restart policy is '${policy.Name || "no"}'`);
    else if ((policy.MaximumRetryCount ?? 0) > 5 || (policy.MaximumRetryCount ?? 0) === 0) problems.push(`on-failure retries ${policy.MaximumRetryCount || "unlimited"}`);
    out.push(swarmTask
      ? result("restart", [], "Swarm restarts the task (service restart policy, with a delay)")
      : result("restart", problems, `on-failure:${policy.MaximumRetryCount}`));
  }

  out.push(!probes ? needsProbe("data-ownership") : result("data-ownership",
    probes.foreignFiles.trim() ? [`not owned by 1000:1000: ${probes.foreignFiles.trim().split("\n").slice(0, 5).join(", ")}`] : [],
    "all owned by 1000:1000"));

  out.push(!probes ? needsProbe("no-build-tools") : result("no-build-tools",
    probes.buildLeftovers.trim() ? [`found ${probes.buildLeftovers.trim().split("\n").slice(0, 5).join(", ")}`] : [], "none"));

  return out;
}
