/**
 * The hardening rules, one per policy: each a value with its name, why it matters (description), how
 * to fix a violation (remediation), its configuration, and a pure check of one container's settings
 * (settings.ts) returning what is wrong (nothing: compliant). index.ts makes Pulumi policies of them.
 *
 * These are the rules a program shows before anything runs. What only a running container can show
 * (its processes' real UID and NoNewPrivs, files it writes in its volumes, the image's own healthcheck,
 * no shell in the image) stays in `fleet audit`: see the README.
 */
import { MIN_REASON, reviewedListSchema, type Exemption } from "./config";
import { UNKNOWN, type ContainerSettings, type Maybe } from "./settings";

/** Where fleet records the reason of every capability it adds back (src/hardening/names.ts, LABEL_CAP_REASONS). */
export const CAP_REASONS_LABEL = "io.hardened-fleet.cap-add-reasons";

/** A policy's settings, as the pack's config gives them (each policy's own keys). */
export interface RuleConfig {
  exemptions?: Exemption[];
  /** capabilities-dropped: capability -> why it is added (besides the label) */
  capabilityReasons?: Record<string, string>;
  /** no-host-ports: the proxies allowed to publish host ports, each with its review */
  reviewedProxies?: Exemption[];
  /** restart-bounded: the most restarts allowed */
  maxRetries?: number;
  /** log-rotation: drivers that ship lines off the engine (rotation is the receiver's) */
  shippingDrivers?: string[];
  /** image-pinned-by-digest: whether this stack is production (else: its name says) */
  production?: boolean;
  /** volume-owner-label: label keys that say whose a volume is */
  ownerLabels?: string[];
}

export type EnforcementLevel = "advisory" | "mandatory" | "disabled";

export interface ContainerRule {
  name: string;
  description: string;
  remediation: string;
  enforcementLevel: EnforcementLevel;
  /** JSON schema of the policy's own settings (besides exemptions) */
  config?: Record<string, object>;
  /** what breaks the rule; `production`: whether the stack is production */
  check(s: ContainerSettings, cfg: RuleConfig, production: boolean): string[];
}

const isKnown = <T>(v: Maybe<T>): v is T => v !== UNKNOWN;

/** `uid[:gid]`, both numbers, neither 0. */
function nonRootUser(user: string | undefined): string | undefined {
  if (user === undefined || user === "") return "no user is set, so it runs as the image's user (root unless the image says otherwise)";
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m) return `user '${user}' is a name: the engine resolves names in the image's /etc/passwd, so only a number is known to be non-root`;
  if (Number(m[1]) === 0) return `user '${user}' is root (UID 0)`;
  if (m[2] === undefined) return `user '${user}' has no group: the engine takes the image's passwd entry, or GID 0 (root) without one; give both, e.g. ${m[1]}:${m[1]}`;
  if (Number(m[2]) === 0) return `user '${user}' has the root group (GID 0)`;
  return undefined;
}

/** NET_ADMIN, whether written net_admin or CAP_NET_ADMIN. */
const capabilityName = (cap: string): string => cap.trim().toUpperCase().replace(/^CAP_/, "");

/** capability -> reason, from fleet's label ("NET_BIND_SERVICE: serves port 443; ..."). */
export function capabilityReasons(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (labels[CAP_REASONS_LABEL] ?? "").split(";")) {
    const i = part.indexOf(":");
    if (i > 0) out[capabilityName(part.slice(0, i))] = part.slice(i + 1).trim();
  }
  return out;
}

const SOCKETS = /(^|\/)(docker|containerd|podman|crio)\.sock$/;
const HOST_TREES = ["/", "/proc", "/sys", "/dev", "/var/lib/docker", "/var/run", "/run", "/etc", "/root", "/boot"];

export const RULES: ContainerRule[] = [
  {
    name: "non-root-user",
    description: "A container runs as a numeric non-root user (fleet: 1000:1000). As root, an escape from the app is root on the host's files, and the files it writes in its volumes (backups, restores) come out owned by root.",
    remediation: "Set the user to a numeric UID:GID other than 0, e.g. user: \"1000:1000\", and make the image's files readable by it.",
    enforcementLevel: "mandatory",
    check(s) {
      if (!isKnown(s.user)) return [];
      const problem = nonRootUser(s.user);
      return problem ? [problem] : [];
    },
  },
  {
    name: "capabilities-dropped",
    description: "A container drops every Linux capability (CapDrop ALL) and adds back only those it needs, each with a stated reason. Docker's default set includes CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_SETUID and CAP_NET_RAW, none of which a web app needs.",
    remediation: `Drop ALL (docker.Container: capabilities.drops ["ALL"]; docker.Service: capDrops). For each capability added back, state why in the label ${CAP_REASONS_LABEL} ("NAME: reason; ...", as fleet does) or in this policy's capabilityReasons, at least ${MIN_REASON} characters.`,
    enforcementLevel: "mandatory",
    config: { capabilityReasons: { type: "object", additionalProperties: { type: "string", minLength: MIN_REASON }, description: "capability -> why it is added" } },
    check(s, cfg) {
      const out: string[] = [];
      if (isKnown(s.capDrop) && !s.capDrop.some((c) => c.toUpperCase() === "ALL")) {
        out.push(`capabilities are not all dropped (drops: ${s.capDrop.length ? s.capDrop.join(", ") : "none"}): the engine's default set stays`);
      }
      if (isKnown(s.capAdd) && isKnown(s.labels)) {
        const configured = Object.entries(cfg.capabilityReasons ?? {}).map(([cap, why]) => [capabilityName(cap), why.trim()]);
        const reasons = { ...capabilityReasons(s.labels), ...Object.fromEntries(configured) };
        for (const cap of s.capAdd) {
          const name = capabilityName(cap);
          if (name === "ALL") out.push("adds ALL capabilities back");
          else if ((reasons[name] ?? "").length < MIN_REASON) out.push(`adds ${name} without a stated reason`);
        }
      }
      return out;
    },
  },
  {
    name: "no-new-privileges",
    description: "A container's processes can never gain privileges (no-new-privileges): a setuid binary in the image, or one the app writes, cannot make it root.",
    remediation: "docker.Container: securityOpts [\"no-new-privileges:true\"]. A Swarm service: the Engine API's Privileges.NoNewPrivileges (fleet's SwarmService), or the nodes' daemon-wide \"no-new-privileges\": true with an exemption saying so (docker.Service has no input for it).",
    enforcementLevel: "mandatory",
    check(s) {
      if (s.noNewPrivileges === "unsupported") return [`${s.kind} cannot set no-new-privileges (the provider has no input for it)`];
      return s.noNewPrivileges === false ? ["no-new-privileges is not set"] : [];
    },
  },
  {
    name: "read-only-root",
    description: "A container's root filesystem is read-only, with tmpfs (size-bounded, nosuid) only where the app writes: nothing it runs can change its own code, and what it writes outside its volumes is gone at restart.",
    remediation: "Set readOnly: true, and mount a tmpfs with a size= bound (and nosuid) on each path the app writes (e.g. /tmp).",
    enforcementLevel: "mandatory",
    check(s) {
      const out: string[] = [];
      if (s.readOnly === false) out.push("the root filesystem is writable (readOnly is not true)");
      if (isKnown(s.tmpfs)) {
        for (const [path, opts] of Object.entries(s.tmpfs)) {
          if (!/(^|,)size=\d+/.test(opts)) out.push(`tmpfs ${path} has no size= bound`);
          if (s.kind === "docker.Container" && !/(^|,)nosuid(,|$)/.test(opts)) out.push(`tmpfs ${path} is not nosuid`);
        }
      }
      return out;
    },
  },
  {
    name: "resource-limits",
    description: "A container has a memory limit and a CPU limit: without them one customer can take the host's memory or CPU from every other (the PIDs limit is the pids-limit policy).",
    remediation: "docker.Container: memory (MB) and cpus; docker.Service: taskSpec.resources.limits.memoryBytes and nanoCpus.",
    enforcementLevel: "mandatory",
    check(s) {
      const out: string[] = [];
      if (isKnown(s.memoryBytes) && !(s.memoryBytes && s.memoryBytes > 0)) out.push("no memory limit");
      if (isKnown(s.cpus) && !(s.cpus && s.cpus > 0)) out.push("no CPU limit");
      return out;
    },
  },
  {
    name: "healthcheck",
    description: "A container has a healthcheck at run time, so the engine, the deployment and the monitoring know when it stops serving (the image's own healthcheck is checked by fleet audit).",
    remediation: "Set a healthcheck whose test runs a command of the image (e.g. [\"CMD\", \"python\", \"/app/healthcheck.py\"]), not [\"NONE\"].",
    enforcementLevel: "mandatory",
    check(s) {
      if (!isKnown(s.healthcheck)) return [];
      if (!s.healthcheck || s.healthcheck.length === 0) return ["no healthcheck is set"];
      if (s.healthcheck[0] === "NONE") return ["the healthcheck is disabled (NONE)"];
      return [];
    },
  },
  {
    name: "no-host-ports",
    description: "A container publishes no host port: its traffic comes through a reviewed proxy (fleet's edge proxy), the one place where TLS, hostnames and limits are enforced. A published port bypasses all of that, on every address of the host.",
    remediation: "Remove the published ports and route through the proxy; a proxy itself is listed in this policy's reviewedProxies, with its review.",
    enforcementLevel: "mandatory",
    config: { reviewedProxies: { ...reviewedListSchema, description: "proxies that may publish host ports, each with its review" } },
    check(s) {
      if (!isKnown(s.hostPorts) || s.hostPorts.length === 0) return [];
      return [`publishes host ports ${s.hostPorts.map((p) => `${p.ip}:${p.port || "(any)"}`).join(", ")} without being a reviewed proxy`];
    },
  },
  {
    name: "no-host-access",
    description: "A container gets nothing of the host: not privileged, none of its namespaces (network, PID, IPC, user, cgroup), no devices, no docker.sock (the engine's socket is root on the host), no host system directories, and the engine's seccomp and AppArmor confinement stays on.",
    remediation: "Remove privileged, the host network/pid/ipc/userns/cgroupns modes, the devices, the bind mounts of host paths and any seccomp=unconfined, apparmor=unconfined or label=disable; use named volumes for data.",
    enforcementLevel: "mandatory",
    check(s) {
      const out: string[] = [];
      if (s.privileged === true) out.push("runs privileged");
      if (isKnown(s.hostNamespaces)) for (const ns of s.hostNamespaces) out.push(`joins the host's ${ns} namespace`);
      if (isKnown(s.devices) && s.devices.length > 0) out.push(`gets host devices ${s.devices.join(", ")}`);
      if (isKnown(s.unconfined)) for (const c of s.unconfined) out.push(`turns off ${c} confinement`);
      if (isKnown(s.hostMounts)) {
        for (const m of s.hostMounts) {
          const p = m.replace(/\/+$/, "") || "/";
          const tree = HOST_TREES.find((t) => p === t || (t !== "/" && p.startsWith(`${t}/`)));
          if (SOCKETS.test(p)) out.push(`mounts the engine's socket ${m}`);
          else if (tree) out.push(`mounts the host's ${p}${p === tree ? "" : ` (under ${tree})`}`);
        }
      }
      return out;
    },
  },
  {
    name: "restart-bounded",
    description: "A container restarts on failure, a bounded number of times: a crash loop without a bound burns CPU on the host for ever and hides the failure.",
    remediation: "docker.Container: restart \"on-failure\" with maxRetryCount between 1 and the bound (Docker reads 0 as for ever); docker.Service: restartPolicy condition \"on-failure\" with maxAttempts.",
    enforcementLevel: "mandatory",
    config: { maxRetries: { type: "integer", minimum: 1, description: "the most restarts allowed (default 10)" } },
    check(s, cfg) {
      if (!isKnown(s.restart)) return [];
      const bound = cfg.maxRetries ?? 10;
      const { policy, maxRetries } = s.restart;
      if (policy !== "on-failure") return [`restart policy is '${policy}', not on-failure with a bound`];
      if (!(maxRetries >= 1)) return ["restarts on failure without a bound (0 is for ever)"];
      if (maxRetries > bound) return [`restarts up to ${maxRetries} times, more than the bound of ${bound}`];
      return [];
    },
  },
  {
    name: "log-rotation",
    description: "A container's logs are rotated (or shipped off the engine): Docker's json-file without max-size grows until the host's disk is full.",
    remediation: "json-file or local: logOpts max-size (e.g. 10m) and max-file (e.g. 3); or a driver that ships the lines to a collector that rotates them (this policy's shippingDrivers).",
    enforcementLevel: "mandatory",
    config: { shippingDrivers: { type: "array", items: { type: "string" }, description: "log drivers whose receiver rotates (default syslog, fluentd, gelf, journald)" } },
    check(s, cfg) {
      if (!isKnown(s.log)) return [];
      const { driver, opts } = s.log;
      if ((cfg.shippingDrivers ?? ["syslog", "fluentd", "gelf", "journald"]).includes(driver)) return [];
      if (driver === "none") return ["logs nothing (driver none): nothing to read when it fails"];
      if (driver !== "json-file" && driver !== "local") return [`log driver '${driver}' is neither rotated here nor listed in shippingDrivers`];
      const out: string[] = [];
      if (!opts["max-size"]) out.push(`${driver} logs have no max-size`);
      if (driver === "json-file" && !opts["max-file"]) out.push("json-file logs have no max-file");
      return out;
    },
  },
  {
    name: "image-pinned-by-digest",
    description: "In production a container runs an image pinned by its digest (name@sha256:...): a tag can be moved, so what runs could differ from what staging tested and what was scanned and signed.",
    remediation: "Use the image's digest, e.g. registry/app@sha256:<64 hex> (fleet's promote mode does); outside production this policy does not apply.",
    enforcementLevel: "mandatory",
    config: { production: { type: "boolean", description: "whether this stack is production (default: its name is prod, production, prod-* or production-*)" } },
    check(s, _cfg, production) {
      if (!production || !isKnown(s.image) || s.image === undefined) return [];
      return /@sha256:[0-9a-f]{64}$/.test(s.image) || /^sha256:[0-9a-f]{64}$/.test(s.image) ? [] : [`image '${s.image}' is not pinned by digest`];
    },
  },
];

/** The PIDs limit, which a docker.Container carries only through a separate resource (index.ts checks stacks for it). */
export const PIDS_RULE = {
  name: "pids-limit",
  description: "A container has a PIDs limit of its own: one customer's fork bomb cannot take the host's process table from the others (ulimit nproc counts per host UID, shared by every customer running as 1000).",
  remediation: "docker.Container has no input for it: set it after creation through the Engine API (fleet's ContainerGate, type hardened-fleet:PidsLimit, with the container's id); a Swarm service: Resources.Limits.Pids (fleet's SwarmService).",
  enforcementLevel: "mandatory" as EnforcementLevel,
};

/** volume-owner-label: whose a volume is, so that backups, moves and deprovisioning find its owner. */
export const VOLUME_RULE = {
  name: "volume-owner-label",
  description: "A volume is labelled with its owner (a customer, an environment): data is found, backed up, moved and kept by whose it is, never by guessing from its name.",
  remediation: "Add a label naming the owner to the volume, e.g. io.hardened-fleet.customer=<id> (the keys accepted are this policy's ownerLabels). Docker cannot relabel an existing volume: for one made without labels, exempt it with the reason (fleet: policy.exemptions) until its data moves to a labelled volume.",
  enforcementLevel: "mandatory" as EnforcementLevel,
  config: { ownerLabels: { type: "array", items: { type: "string" }, minItems: 1, description: "label keys that say whose a volume is" } },
  defaultOwnerLabels: ["io.hardened-fleet.customer", "io.hardened-fleet.environment", "owner"],
};

/** The volume rule's check: the owner label keys missing (labels as docker.Volume takes them). */
export function volumeOwnerProblems(labels: Record<string, string>, cfg: RuleConfig): string[] {
  const keys = cfg.ownerLabels ?? VOLUME_RULE.defaultOwnerLabels;
  return keys.some((k) => (labels[k] ?? "").trim() !== "") ? [] : [`has no owner label (one of ${keys.join(", ")})`];
}

/** Every policy of the pack, by name: what the pack's config (and fleet's `policy` config) may name. */
export const POLICY_NAMES: readonly string[] = [...RULES.map((r) => r.name), PIDS_RULE.name, VOLUME_RULE.name];
