/**
 * What the rules judge: one container's hardening settings, read from whichever resource makes it.
 * Three kinds of resource run containers, each with its own property names:
 *
 *  - docker:index/container:Container (@pulumi/docker's docker.Container: one container on one engine);
 *  - docker:index/service:Service (docker.Service: a Swarm service; the provider's schema has no input
 *    for no-new-privileges or a PIDs limit, so those read as `unsupported`);
 *  - pulumi-nodejs:dynamic/hardened-fleet:SwarmService (fleet's own Swarm service: the Engine API's
 *    service spec, whole, in its `spec` input).
 *
 * Pure: no Pulumi import. A value Pulumi cannot know during a preview (a name computed from another
 * resource) reads as UNKNOWN, and a rule that needs it waits for the update, where it is known.
 */

/** A value not known until the update (the policy SDK raises an error when such a value is read). */
export const UNKNOWN: unique symbol = Symbol("unknown until the update");
export type Maybe<T> = T | typeof UNKNOWN;

/** Reads `read()`, or UNKNOWN when it touches a value a preview cannot know. */
export function known<T>(read: () => T): Maybe<T> {
  try {
    return read();
  } catch (err) {
    // @pulumi/policy's UnknownValueError (internal: recognised by its fields, not its class)
    if (err instanceof Error && "unknownTypeSentinel" in err) return UNKNOWN;
    throw err;
  }
}

export type ContainerKind = "docker.Container" | "docker.Service" | "SwarmService";

export interface PublishedPort {
  port: number;
  ip: string;
}

export interface ContainerSettings {
  kind: ContainerKind;
  /** the container's (or service's) own name, where the program gives one; exemptions match it too */
  name: Maybe<string | undefined>;
  image: Maybe<string | undefined>;
  user: Maybe<string | undefined>;
  capDrop: Maybe<string[]>;
  capAdd: Maybe<string[]>;
  labels: Maybe<Record<string, string>>;
  noNewPrivileges: Maybe<boolean | "unsupported">;
  readOnly: Maybe<boolean>;
  /** mount point -> options (docker.Container's form; a Swarm tmpfs mount reads as `size=<bytes>`) */
  tmpfs: Maybe<Record<string, string>>;
  memoryBytes: Maybe<number | undefined>;
  /** CPUs (1.5 = one and a half) */
  cpus: Maybe<number | undefined>;
  /** unsupported: the resource cannot carry one (docker.Container's is set by a separate resource: see the pids-limit rule) */
  pidsLimit: Maybe<number | "unsupported" | undefined>;
  /** the runtime healthcheck's test, e.g. ["CMD", "python", "/app/healthcheck.py"]; undefined: none set */
  healthcheck: Maybe<string[] | undefined>;
  hostPorts: Maybe<PublishedPort[]>;
  privileged: Maybe<boolean>;
  /** the host namespaces it joins: network, pid, ipc, userns, cgroupns, uts */
  hostNamespaces: Maybe<string[]>;
  devices: Maybe<string[]>;
  /** host paths mounted into it */
  hostMounts: Maybe<string[]>;
  /** the kernel confinements it turns off (seccomp, apparmor, SELinux labels) */
  unconfined: Maybe<string[]>;
  restart: Maybe<{ policy: string; maxRetries: number }>;
  log: Maybe<{ driver: string; opts: Record<string, string> }>;
}

type Props = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const list = <T>(v: T[] | undefined | null): T[] => (Array.isArray(v) ? [...v] : []);

export function labelsOf(v: unknown): Record<string, string> {
  // docker.Container and docker.Volume: [{label, value}]; docker.Service and the Engine API: a map
  if (Array.isArray(v)) return Object.fromEntries(v.map((l: { label: string; value: string }) => [l.label, l.value]));
  return v && typeof v === "object" ? { ...(v as Record<string, string>) } : {};
}

/** docker.Container's `cpus` is a string ("0.5"); the others are numbers. */
function cpusOf(v: unknown): number | undefined {
  const n = typeof v === "string" ? Number(v) : typeof v === "number" ? v : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** A docker.Container's inputs. */
export function fromDockerContainer(p: Props): ContainerSettings {
  const namespaces = (): string[] => {
    const out: string[] = [];
    if (p.networkMode === "host") out.push("network");
    if (p.pidMode === "host") out.push("pid");
    if (p.ipcMode === "host") out.push("ipc");
    if (p.usernsMode === "host") out.push("userns");
    if (p.cgroupnsMode === "host") out.push("cgroupns");
    return out;
  };
  return {
    kind: "docker.Container",
    name: known(() => p.name as string | undefined),
    image: known(() => p.image as string | undefined),
    user: known(() => (p.user === undefined ? undefined : String(p.user))),
    capDrop: known(() => list<string>(p.capabilities?.drops)),
    capAdd: known(() => list<string>(p.capabilities?.adds)),
    labels: known(() => labelsOf(p.labels)),
    noNewPrivileges: known(() => list<string>(p.securityOpts).some((o) => /^no-new-privileges(?:[:=]true)?$/.test(o))),
    readOnly: known(() => p.readOnly === true),
    tmpfs: known(() => ({ ...((p.tmpfs ?? {}) as Record<string, string>) })),
    // docker.Container's memory is in MB
    memoryBytes: known(() => (typeof p.memory === "number" && p.memory > 0 ? p.memory * 1024 * 1024 : undefined)),
    cpus: known(() => cpusOf(p.cpus)),
    pidsLimit: "unsupported",
    healthcheck: known(() => (p.healthcheck ? list<string>(p.healthcheck.tests) : undefined)),
    hostPorts: known(() => list<{ external?: number; internal: number; ip?: string }>(p.ports)
      // without `external` the engine picks a free host port: published all the same
      .map((port) => ({ port: port.external ?? 0, ip: port.ip ?? "0.0.0.0" }))),
    privileged: known(() => p.privileged === true),
    hostNamespaces: known(namespaces),
    devices: known(() => [...list<{ hostPath: string }>(p.devices).map((d) => d.hostPath), ...(p.gpus ? [`gpus ${p.gpus}`] : [])]),
    hostMounts: known(() => [
      ...list<{ hostPath?: string }>(p.volumes).flatMap((v) => (v.hostPath ? [v.hostPath] : [])),
      ...list<{ type?: string; source?: string }>(p.mounts).flatMap((m) => (m.type === "bind" && m.source ? [m.source] : [])),
    ]),
    unconfined: known(() => list<string>(p.securityOpts).flatMap((o) => {
      const m = /^(seccomp|apparmor)[:=]unconfined$/.exec(o) ?? /^(label)[:=]disable$/.exec(o);
      return m ? [m[1]!] : [];
    })),
    restart: known(() => ({ policy: String(p.restart ?? "no"), maxRetries: Number(p.maxRetryCount ?? 0) })),
    log: known(() => ({ driver: String(p.logDriver ?? "json-file"), opts: { ...((p.logOpts ?? {}) as Record<string, string>) } })),
  };
}

const SECOND_NS = 1e9;

/** A docker.Service's inputs. */
export function fromDockerService(p: Props): ContainerSettings {
  const spec = (): Props => p.taskSpec?.containerSpec ?? {};
  return {
    kind: "docker.Service",
    name: known(() => p.name as string | undefined),
    image: known(() => spec().image as string | undefined),
    user: known(() => spec().user as string | undefined),
    capDrop: known(() => list<string>(spec().capDrops)),
    capAdd: known(() => list<string>(spec().capAdds)),
    labels: known(() => ({ ...labelsOf(p.labels), ...labelsOf(spec().labels) })),
    noNewPrivileges: "unsupported",
    readOnly: known(() => spec().readOnly === true),
    tmpfs: known(() => Object.fromEntries(list<Props>(spec().mounts).filter((m) => m.type === "tmpfs")
      .map((m) => [m.target as string, m.tmpfsOptions?.sizeBytes ? `size=${m.tmpfsOptions.sizeBytes}` : ""]))),
    memoryBytes: known(() => p.taskSpec?.resources?.limits?.memoryBytes as number | undefined),
    cpus: known(() => {
      const nano = p.taskSpec?.resources?.limits?.nanoCpus as number | undefined;
      return nano ? nano / SECOND_NS : undefined;
    }),
    pidsLimit: "unsupported",
    healthcheck: known(() => (spec().healthcheck ? list<string>(spec().healthcheck.tests) : undefined)),
    // every port of the endpoint spec is published: without publishedPort, Swarm picks one (30000-32767)
    hostPorts: known(() => list<Props>(p.endpointSpec?.ports).map((port) => ({ port: Number(port.publishedPort ?? 0), ip: "0.0.0.0" }))),
    privileged: false,
    hostNamespaces: known(() => (list<Props>(p.taskSpec?.networksAdvanceds).some((n) => n.name === "host") ? ["network"] : [])),
    devices: [],
    hostMounts: known(() => list<Props>(spec().mounts).flatMap((m) => (m.type === "bind" && m.source ? [m.source as string] : []))),
    unconfined: [],
    restart: known(() => ({
      policy: String(p.taskSpec?.restartPolicy?.condition ?? "any"),
      maxRetries: Number(p.taskSpec?.restartPolicy?.maxAttempts ?? 0),
    })),
    log: known(() => ({
      driver: String(p.taskSpec?.logDriver?.name ?? "json-file"),
      opts: { ...((p.taskSpec?.logDriver?.options ?? {}) as Record<string, string>) },
    })),
  };
}

/** fleet's SwarmService: the Engine API's service spec (TaskTemplate.ContainerSpec and the rest). */
export function fromSwarmSpec(p: Props): ContainerSettings {
  const task = (): Props => p.spec?.TaskTemplate ?? {};
  const spec = (): Props => task().ContainerSpec ?? {};
  return {
    kind: "SwarmService",
    name: known(() => p.spec?.Name as string | undefined),
    image: known(() => spec().Image as string | undefined),
    user: known(() => spec().User as string | undefined),
    capDrop: known(() => list<string>(spec().CapabilityDrop)),
    capAdd: known(() => list<string>(spec().CapabilityAdd)),
    labels: known(() => ({ ...labelsOf(p.spec?.Labels), ...labelsOf(spec().Labels) })),
    noNewPrivileges: known(() => spec().Privileges?.NoNewPrivileges === true),
    readOnly: known(() => spec().ReadOnly === true),
    tmpfs: known(() => Object.fromEntries(list<Props>(spec().Mounts).filter((m) => m.Type === "tmpfs")
      .map((m) => [m.Target as string, m.TmpfsOptions?.SizeBytes ? `size=${m.TmpfsOptions.SizeBytes}` : ""]))),
    memoryBytes: known(() => task().Resources?.Limits?.MemoryBytes as number | undefined),
    cpus: known(() => {
      const nano = task().Resources?.Limits?.NanoCPUs as number | undefined;
      return nano ? nano / SECOND_NS : undefined;
    }),
    pidsLimit: known(() => task().Resources?.Limits?.Pids as number | undefined),
    healthcheck: known(() => (spec().Healthcheck ? list<string>(spec().Healthcheck.Test) : undefined)),
    hostPorts: known(() => list<Props>(p.spec?.EndpointSpec?.Ports).map((port) => ({ port: Number(port.PublishedPort ?? 0), ip: "0.0.0.0" }))),
    privileged: false,
    hostNamespaces: known(() => (list<Props>(task().Networks).some((n) => n.Target === "host") ? ["network"] : [])),
    devices: [],
    hostMounts: known(() => list<Props>(spec().Mounts).flatMap((m) => (m.Type === "bind" && m.Source ? [m.Source as string] : []))),
    unconfined: known(() => [
      ...(spec().Privileges?.Seccomp?.Mode === "unconfined" ? ["seccomp"] : []),
      ...(spec().Privileges?.AppArmor?.Mode === "disabled" ? ["apparmor"] : []),
    ]),
    restart: known(() => ({ policy: String(task().RestartPolicy?.Condition ?? "any"), maxRetries: Number(task().RestartPolicy?.MaxAttempts ?? 0) })),
    log: known(() => ({ driver: String(task().LogDriver?.Name ?? "json-file"), opts: { ...((task().LogDriver?.Options ?? {}) as Record<string, string>) } })),
  };
}

/** How a resource of `type` is read, when it runs containers (own keys only: a type is never a prototype's). */
export function readerOf(type: string): ((props: Props) => ContainerSettings) | undefined {
  return Object.hasOwn(CONTAINER_TYPES, type) ? CONTAINER_TYPES[type] : undefined;
}

/** The resource types that run containers, and how each is read. */
export const CONTAINER_TYPES: Record<string, (props: Props) => ContainerSettings> = {
  "docker:index/container:Container": fromDockerContainer,
  "docker:index/service:Service": fromDockerService,
  "pulumi-nodejs:dynamic/hardened-fleet:SwarmService": fromSwarmSpec,
};

/** fleet's gate, which sets a docker.Container's PIDs limit through the Engine API (components/containerGate.ts). */
export const PIDS_LIMIT_TYPE = "pulumi-nodejs:dynamic/hardened-fleet:PidsLimit";
export const VOLUME_TYPE = "docker:index/volume:Volume";
