/**
 * The hardened settings of one customer's container, computed from config alone.
 * Both the Pulumi component (toContainerArgs) and the real-engine tests (toEngineCreateOptions)
 * are mapped from this one value, so what is tested is what is deployed.
 */
import { createHash } from "node:crypto";
import { customerLog } from "../logs/driver";
import type { CustomerConfig, EnvironmentConfig } from "../config/schema";
import {
  APP_GID, APP_SECRET_KEY_FILE, APP_SECRETS_DIR, APP_UID, HARDENING_PROFILE_VERSION, LABEL_CAP_REASONS, LABEL_CUSTOMER,
  LABEL_ENVIRONMENT, LABEL_MANAGED, LABEL_PLAN, LABEL_PROFILE, LABEL_ROLE, ROLE_CUSTOMER, customerNames,
} from "./names";
import { cgroupPidsLimit, LABEL_SANDBOX, sandboxRuntime, sandboxUlimits } from "./sandbox";

export interface HealthcheckSpec {
  test: string[];
  intervalSeconds: number;
  timeoutSeconds: number;
  retries: number;
  startPeriodSeconds: number;
}

/** Who a customer's service is: its Docker names and identity labels, known from the two ids alone. */
export interface ServiceIdentity {
  /** its containers are `<containerPrefix>-<slot>` */
  containerPrefix: string;
  networkName: string;
  dataVolumeName: string;
  /** labels of the network and the data volume: whose they are, nothing a plan or profile change touches */
  identityLabels: Record<string, string>;
}

/** A host port the engine publishes (only the edge proxy has any). */
export interface PublishedPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

/** One hardened container, whatever it runs (a customer's app, the edge proxy): what toContainerArgs maps. */
export interface ContainerSpec {
  containerName: string;
  networkName: string;
  hostname: string;
  image: string;
  user: string;
  capDrop: string[];
  capAdd: string[];
  securityOpt: string[];
  /** its own cgroup namespace: the engine's default on cgroup v1 is the host's */
  cgroupns: "private";
  readOnlyRootfs: boolean;
  /** mount point -> tmpfs options */
  tmpfs: Record<string, string>;
  memoryBytes: number;
  memorySwapBytes: number;
  cpus: number;
  pidsLimit: number;
  ulimits: { name: string; soft: number; hard: number }[];
  /** kernel settings of the container's own network namespace, each with its reason where it is set */
  sysctls?: Record<string, string>;
  restart: { policy: "on-failure"; maxRetries: number };
  healthcheck: HealthcheckSpec;
  /** seconds the deployment waits for healthy before it fails */
  healthTimeoutSeconds: number;
  /** json-file, or syslog into the environment's log collector (src/logs/collector.ts, customerLog) */
  log: { driver: "json-file" | "syslog"; opts: Record<string, string> };
  /** the port the app listens on inside the container */
  port: number;
  /** host ports: none for a customer (its traffic comes through the edge proxy) */
  publish: PublishedPort[];
  data: { volume: string; target: string };
  /**
   * The app's secret key as a file (owner 1000, mode 0400) on a volume of its own, mounted read-only at
   * `dir`; `envVar` names the file for the app. Never in the environment, never on an image layer.
   */
  secretFile?: SecretFileSpec;
  /** plain environment; secrets are added by the component as Pulumi secrets */
  env: Record<string, string>;
  /** container labels: identity plus plan, profile and capability reasons */
  labels: Record<string, string>;
  /**
   * The runtime a sandboxed plan's container runs under (runsc, sandbox.ts); absent: the engine's
   * default (runc). Absent rather than "runc" so the specs (and slots) of unsandboxed customers are as before.
   */
  runtime?: string;
}

export interface SecretFileSpec {
  volume: string;
  /** the mount point of the volume (read-only) */
  dir: string;
  fileName: string;
  /** the environment variable holding the file's path */
  envVar: string;
}

/** The container's plain environment: spec.env and where the secret key file is (its path, never the key). */
export function containerEnv(spec: ContainerSpec): Record<string, string> {
  const f = spec.secretFile;
  return f ? { ...spec.env, [f.envVar]: `${f.dir}/${f.fileName}` } : spec.env;
}

/**
 * What every container fleet makes gets, whatever it runs (docs/hardening.md), with the capabilities
 * it adds back (each with a reason, in the config). The keys keep their order: a spec's slot is a hash of it.
 */
export function hardenedBase(capAdd: string[]): Pick<ContainerSpec, "user" | "capDrop" | "capAdd" | "securityOpt" | "cgroupns" | "readOnlyRootfs"> {
  return { user: `${APP_UID}:${APP_GID}`, capDrop: ["ALL"], capAdd, securityOpt: ["no-new-privileges:true"], cgroupns: "private", readOnlyRootfs: true };
}

/** A customer's service: its container, whose name ends in the slot of this spec. */
export interface ServiceSpec extends ContainerSpec, ServiceIdentity {
  environment: string;
  customerId: string;
  plan: string;
}

/** The identity of customer `customerId` in `environment`. Pure. */
export function serviceIdentity(environment: string, customerId: string): ServiceIdentity {
  const names = customerNames(environment, customerId);
  return {
    containerPrefix: names.container,
    networkName: names.network,
    dataVolumeName: names.dataVolume,
    identityLabels: {
      [LABEL_MANAGED]: "true",
      [LABEL_ROLE]: ROLE_CUSTOMER,
      [LABEL_ENVIRONMENT]: environment,
      [LABEL_CUSTOMER]: customerId,
    },
  };
}

export const MIB = 1024 * 1024;

export function tmpfsOptions(path: string, sizeMb: number): string {
  const owner = path === "/tmp" ? "mode=1777" : `uid=${APP_UID},gid=${APP_GID},mode=0700`;
  return `rw,noexec,nosuid,nodev,size=${sizeMb}m,${owner}`;
}

/**
 * A customer's service from config alone, and where its lines go: `logCollector`, the address of the
 * environment's log collector its environment stack published (output `logs`), or, without one, the
 * engine's json-file (src/logs/driver.ts).
 */
export function serviceSpec(env: EnvironmentConfig, customer: CustomerConfig, image: string, logCollector?: string): ServiceSpec {
  // own keys only: a plan named 'constructor' must not find Object.prototype's
  const plan = Object.hasOwn(env.plans, customer.plan) ? env.plans[customer.plan] : undefined;
  if (!plan) throw new Error(`plan '${customer.plan}' is not defined in environment '${env.name}'`);
  const names = customerNames(env.name, customer.id);
  const identity = serviceIdentity(env.name, customer.id);
  const { app } = env;
  const tmpfs: Record<string, string> = {};
  for (const path of app.writablePaths) tmpfs[path] = tmpfsOptions(path, plan.tmpfsMb);
  const capAdd = env.capabilities.add.map((c) => c.name);
  const { identityLabels } = identity;
  const labels: Record<string, string> = {
    ...identityLabels,
    [LABEL_PLAN]: customer.plan,
    [LABEL_PROFILE]: HARDENING_PROFILE_VERSION,
  };
  if (capAdd.length > 0) {
    labels[LABEL_CAP_REASONS] = env.capabilities.add.map((c) => `${c.name}: ${c.reason}`).join("; ");
  }
  const runtime = sandboxRuntime(plan.sandbox);
  if (runtime) labels[LABEL_SANDBOX] = plan.sandbox;
  const spec: Omit<ServiceSpec, "containerName"> = {
    environment: env.name,
    customerId: customer.id,
    plan: customer.plan,
    ...identity,
    hostname: names.hostname,
    image,
    ...hardenedBase(capAdd),
    tmpfs,
    memoryBytes: plan.memoryMb * MIB,
    memorySwapBytes: plan.memoryMb * MIB,
    cpus: plan.cpus,
    pidsLimit: cgroupPidsLimit(plan.pids, plan.sandbox),
    // no nproc under runc: it counts per host UID, shared by every customer (all run as 1000); pidsLimit is per
    // container. A sandbox counts it in its own kernel, for this customer alone (sandbox.ts)
    ulimits: [{ name: "nofile", soft: plan.nofile, hard: plan.nofile }, ...sandboxUlimits(plan.pids, plan.sandbox)],
    restart: { policy: "on-failure", maxRetries: env.restart.maxRetries },
    healthcheck: {
      test: ["CMD", ...app.healthcheck.command],
      intervalSeconds: app.healthcheck.intervalSeconds,
      timeoutSeconds: app.healthcheck.timeoutSeconds,
      retries: app.healthcheck.retries,
      startPeriodSeconds: app.healthcheck.startPeriodSeconds,
    },
    healthTimeoutSeconds: env.deploy.healthTimeoutSeconds,
    log: customerLog(env, customer.id, logCollector),
    port: app.port,
    publish: [],
    data: { volume: names.dataVolume, target: app.dataPath },
    secretFile: {
      volume: names.secretsVolume, dir: APP_SECRETS_DIR,
      fileName: APP_SECRET_KEY_FILE.slice(APP_SECRETS_DIR.length + 1), envVar: "APP_SECRET_KEY_FILE",
    },
    env: { PORT: String(app.port), DATA_DIR: app.dataPath, HEALTH_PATH: app.healthcheck.path, CUSTOMER_ID: customer.id },
    labels,
    ...(runtime ? { runtime } : {}),
  };
  return { ...spec, containerName: `${identity.containerPrefix}-${containerSlot(spec)}` };
}

/**
 * Eight hex digits that change with anything the container is made from (image, limits, settings).
 * A changed spec is a new container beside the running one, never the running one changed: the
 * new one must be healthy before the edge proxy sends it traffic, and the old one goes last.
 */
export function containerSlot(spec: object): string {
  return createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 8);
}
