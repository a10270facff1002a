/**
 * The shapes of hardened-fleet's configuration, as zod schemas.
 *
 * Environment config (`hardened-fleet:environment`) lives in Pulumi.staging.yaml / Pulumi.prod.yaml.
 * Customer config (`hardened-fleet:customer`) lives in each customer stack (e.g. Pulumi.staging-acme.yaml).
 * Everything is parsed once, at the boundary (see load.ts); the rest of the code sees typed values.
 */
import { createPublicKey } from "node:crypto";
import { z } from "zod";
import { POLICY_NAMES } from "../../policies/src/rules";

/** Lowercase DNS label, at most 32 characters: safe in Docker object names and Pulumi stack names. */
export const CUSTOMER_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
export const customerIdSchema = z
  .string({ error: "must be a string" })
  .max(32, { error: "must be at most 32 characters" })
  .regex(CUSTOMER_ID_PATTERN, {
    error: "must be a lowercase DNS label: a-z, 0-9 and '-', starting and ending with a letter or digit",
  });

const labelSchema = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/, { error: "must be a lowercase DNS label of at most 32 characters" });

/**
 * Environment names: lowercase letters and digits only. No '-', so a customer stack name
 * `<environment>-<customer>` always splits one way (`prod` + `eu-acme` can never meet `prod-eu` + `acme`).
 */
export const ENVIRONMENT_NAME_PATTERN = /^[a-z][a-z0-9]{0,15}$/;
export const environmentNameSchema = z
  .string({ error: "must be a string" })
  .regex(ENVIRONMENT_NAME_PATTERN, {
    error: "must be 1 to 16 lowercase letters and digits, starting with a letter (no '-': customer stacks are <environment>-<customer>)",
  });

/** `name@sha256:<64 hex>`: an image reference pinned by digest. */
export const PINNED_IMAGE_PATTERN = /^[^\s@]+@sha256:[a-f0-9]{64}$/;
/** A local image ID (what a build on the local engine produces and what a promotion carries). */
export const IMAGE_ID_PATTERN = /^sha256:[a-f0-9]{64}$/;
/** What an environment runs and promotes: a local image ID, or a repository digest in a registry (registry/name@sha256:…). */
export const RUNNABLE_IMAGE_PATTERN = /^(?:sha256:[a-f0-9]{64}|[a-z0-9][a-z0-9._\/:-]*@sha256:[a-f0-9]{64})$/;
const runnableImageSchema = z.string().regex(RUNNABLE_IMAGE_PATTERN, {
  error: "must be an image ID sha256:<64 hex> or a repository digest registry/name@sha256:<64 hex>",
});

const imageRefSchema = z
  .string()
  .min(1)
  .regex(/^[a-z0-9][a-z0-9._\/:-]*(?:@sha256:[a-f0-9]{64})?$/, {
    error: "must be an image reference like registry/name:tag or name@sha256:<64 hex>",
  })
  .refine((ref) => !/:latest(?:@|$)/.test(ref), { error: "must not use the 'latest' tag: pin a version or a digest" })
  .refine((ref) => ref.includes("@") || ref.slice(ref.lastIndexOf("/") + 1).includes(":"), {
    error: "must name a tag or a digest (an untagged image means 'latest'; in registry:5000/name the ':5000' is a port, not a tag)",
  });

const absolutePath = z
  .string()
  .regex(/^\/[A-Za-z0-9._\/-]*$/, { error: "must be an absolute path of letters, digits, '.', '_', '-' and '/'" })
  .refine((p) => p !== "/", { error: "must not be '/'" });

export const CAPABILITIES = [
  "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
  "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
] as const;

const capabilityAddSchema = z.strictObject({
  name: z.enum(CAPABILITIES, { error: `must be one of ${CAPABILITIES.join(", ")} (dangerous ones such as SYS_ADMIN are never allowed)` }),
  reason: z.string().min(10, { error: "must say why the app needs this capability (at least 10 characters)" }),
});

/** What a plan's customers run in: the host's kernel (runc), or a gVisor sandbox of their own (runsc). */
export const SANDBOXES = ["none", "gvisor"] as const;
export type Sandbox = (typeof SANDBOXES)[number];
/** The least memory a sandboxed plan may have. */
export const SANDBOX_MIN_MEMORY_MB = 128;

export const planSchema = z.strictObject({
  memoryMb: z.number().int().min(32, { error: "must be at least 32 (MiB)" }).max(65536),
  cpus: z.number().gt(0, { error: "must be more than 0" }).max(64),
  pids: z.number().int().min(16, { error: "must be at least 16" }).max(32768),
  nofile: z.number().int().min(64).max(1048576).default(1024),
  /**
   * RLIMIT_NPROC counts every process of the UID on the whole host, and every customer runs as 1000:
   * one customer's threads would count against all the others. `pids` (the container's own PIDs cgroup) bounds each one.
   */
  nproc: z.unknown().optional().refine((v) => v === undefined, {
    error: "is no longer allowed: the nproc ulimit counts the processes of a UID on the whole host, and every customer " +
      "runs as UID 1000, so one customer's threads would make fork fail in the others. Delete nproc: pids bounds each customer's processes and threads",
  }),
  tmpfsMb: z.number().int().min(1).max(4096).default(64),
  /**
   * `gvisor`: the plan's customers each run in their own user-space kernel (gVisor's runsc, registered
   * with every engine by the set-up; docs/sandbox.md). `none` (the default): the host's kernel, runc.
   */
  sandbox: z.enum(SANDBOXES, { error: `must be one of ${SANDBOXES.join(", ")}` }).default("none"),
}).superRefine((plan, ctx) => {
  // the sandbox's own kernel and gofer take about 50 MiB of the container's memory (docs/sandbox.md)
  if (plan.sandbox !== "none" && plan.memoryMb < SANDBOX_MIN_MEMORY_MB) {
    ctx.addIssue({ code: "custom", path: ["memoryMb"], input: plan.memoryMb,
      message: `must be at least ${SANDBOX_MIN_MEMORY_MB} (MiB) in a sandboxed plan: the sandbox's own kernel takes about 50 MiB of it` });
  }
});

const healthcheckSchema = z.strictObject({
  path: z.string().regex(/^\/[A-Za-z0-9._~\/-]*$/, { error: "must be a URL path starting with '/'" }).default("/healthz"),
  intervalSeconds: z.number().int().min(1).max(300).default(5),
  timeoutSeconds: z.number().int().min(1).max(60).default(3),
  retries: z.number().int().min(1).max(10).default(3),
  startPeriodSeconds: z.number().int().min(0).max(600).default(5),
  /** the command Docker runs; the default uses the app's own Python (no curl or wget in the image) */
  command: z.array(z.string().min(1)).min(1).default(["/opt/venv/bin/python", "/app/healthcheck.py"]),
});

const appSchema = z.strictObject({
  port: z.number().int().min(1024, { error: "must be 1024 or more: the app runs without NET_BIND_SERVICE" }).max(65535).default(8000),
  dataPath: absolutePath.default("/data"),
  writablePaths: z.array(absolutePath).default(["/tmp"]),
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: "must be a Linux user name" }).default("appuser"),
  healthcheck: healthcheckSchema.prefault({}),
});

const buildImageSchema = z.strictObject({
  mode: z.literal("build"),
  /** repository name the built image is tagged with (the tag is the app version) */
  name: z.string().regex(/^[a-z0-9][a-z0-9._\/-]*$/, { error: "must be a repository name without tag, like acme/customer-app" }),
  base: imageRefSchema,
  builder: imageRefSchema,
  /** app source directory, relative to the project directory or absolute */
  appSource: z.string().min(1),
  /** an operator's own Dockerfile (relative to appSource); checked against the hardening rules */
  dockerfile: z.string().min(1).optional(),
  sourceUrl: z.string().default("https://example.invalid/hardened-fleet"),
});

const promoteImageSchema = z.strictObject({
  mode: z.literal("promote"),
  /** the environment stack whose image this one runs */
  fromStack: environmentNameSchema,
  /** the image that passed there (an image ID, or a repository digest with a registry); when unset, the one the source stack runs now */
  digest: runnableImageSchema.optional(),
  /** the base image this environment approves, recorded with every deployment */
  base: imageRefSchema,
});

/** A DNS name of lowercase labels: the edge's domain (customers answer at <customer>.<domain>). */
const dnsNameSchema = z
  .string({ error: "must be a DNS name" })
  .max(200)
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/, {
    error: "must be a lowercase DNS name like staging.example.com (customers answer at <customer>.<domain>)",
  });

/** Top-level names no public CA issues certificates for (RFC 2606, RFC 6761, RFC 6762). */
const PRIVATE_TLDS = ["localhost", "test", "invalid", "example", "local", "internal"];

const hostPortSchema = z.number().int().min(1, { error: "must be a port 1-65535" }).max(65535, { error: "must be a port 1-65535" });

/**
 * The environment's edge proxy: the only container that publishes host ports. Every customer
 * answers at https://<customer>.<domain> through it, and its own containers publish nothing.
 */
export const edgeSchema = z
  .strictObject({
    /** its Docker names are hf-<environment>-<name>(-data, -net); no customer may take this id */
    name: labelSchema.default("edge"),
    domain: dnsNameSchema,
    /** the host address the proxy is published on (127.0.0.1 for a local demo, the host's public address on a server) */
    address: z.ipv4({ error: "must be an IPv4 address" })
      .refine((a) => a !== "0.0.0.0", { error: "must be one address of this host, not 0.0.0.0 (every address): the audit fails a port published on all addresses" })
      .default("127.0.0.1"),
    /** why the proxy is published on an address other than loopback */
    exposeReason: z.string().min(10, { error: "must say why (at least 10 characters)" }).optional(),
    httpsPort: hostPortSchema.default(443),
    /** plain HTTP: answers with a redirect to HTTPS (and lets an ACME CA check the host) */
    httpPort: hostPortSchema.default(80),
    /** internal: a local CA whose root certificate `fleet edge ca` prints; acme: a public CA (Let's Encrypt) */
    tls: z.enum(["internal", "acme"], { error: "must be 'internal' (a local CA) or 'acme' (a public CA, with acmeEmail)" }).default("internal"),
    /** the account e-mail for tls: acme */
    acmeEmail: z.email({ error: "must be an e-mail address" }).optional(),
    /** the base image with Caddy, made from Debian packages by scripts/setup-engine.sh */
    base: imageRefSchema.default("hardened-fleet/edge-base:bookworm"),
    resources: z.strictObject({
      memoryMb: z.number().int().min(32, { error: "must be at least 32 (MiB)" }).max(65536).default(128),
      cpus: z.number().gt(0, { error: "must be more than 0" }).max(64).default(0.5),
      pids: z.number().int().min(16, { error: "must be at least 16" }).max(32768).default(256),
    }).prefault({}),
  })
  .superRefine((edge, ctx) => {
    if (!edge.address.startsWith("127.") && edge.exposeReason === undefined) {
      ctx.addIssue({ code: "custom", path: ["exposeReason"], input: edge.exposeReason,
        message: "is required when the proxy is published on a non-loopback address: say why it must be reachable from outside" });
    }
    if (edge.httpsPort === edge.httpPort) {
      ctx.addIssue({ code: "custom", path: ["httpPort"], input: edge.httpPort, message: "must differ from httpsPort" });
    }
    if (edge.tls === "acme") {
      if (edge.acmeEmail === undefined) {
        ctx.addIssue({ code: "custom", path: ["acmeEmail"], input: edge.acmeEmail,
          message: "is required with tls: acme (the ACME account's contact), e.g. ops@example.com" });
      }
      const tld = edge.domain.slice(edge.domain.lastIndexOf(".") + 1);
      if (PRIVATE_TLDS.includes(tld)) {
        ctx.addIssue({ code: "custom", path: ["tls"], input: edge.tls,
          message: `cannot be 'acme' for ${edge.domain}: no public CA issues certificates under .${tld}; use tls: internal, or a public domain` });
      }
      if (edge.httpPort !== 80 && edge.httpsPort !== 443) {
        ctx.addIssue({ code: "custom", path: ["httpsPort"], input: edge.httpsPort,
          message: "an ACME CA validates on port 80 or 443: publish at least one of them with tls: acme" });
      }
    }
  });

/**
 * The registry an environment's images go through: staging pushes what it builds, every node pulls
 * by repository digest, and prod promotes that digest. The password is the Pulumi secret
 * `hardened-fleet:registryPassword` (never in this file).
 */
const registryShape = {
  /** host[:port] of the registry, e.g. 10.231.0.11:5000 or registry.example.com */
  address: z.string().regex(/^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?$/, {
    error: "must be a registry address host[:port], like registry.example.com or 10.0.0.5:5000 (no scheme, no path)",
  }),
  /** the account for pushes and pulls; its password is the secret hardened-fleet:registryPassword */
  username: z.string().min(1).optional(),
};
export const registrySchema = z.strictObject(registryShape);
/** target: swarm needs one: every node pulls from it */
const requiredRegistrySchema = z.strictObject(registryShape, {
  error: (issue) => issue.input === undefined
    ? "is required with target: swarm: every node pulls the image from it, e.g. registry: {address: 10.0.0.5:5000}"
    : undefined,
});

/** Docker addresses fleet accepts for an engine (the docker provider's own). */
const dockerHostSchema = z.string().regex(/^(?:unix:\/\/\/\S+|(?:tcp|ssh|https?):\/\/\S+)$/, {
  error: "must be a Docker engine address: unix:///path/docker.sock, tcp://host:2376 or ssh://user@host",
});

/**
 * target: swarm: the environment's customers are Docker Swarm services on these nodes. The first node
 * is a manager (fleet deploys through it); fleet reaches every node's engine too, to audit its
 * containers and to move data between nodes. Node names are the node label `hardened-fleet.node`.
 */
export const swarmSchema = z.strictObject({
  nodes: z.array(z.strictObject({
    /** the value of the node label hardened-fleet.node; customers are pinned to it */
    name: labelSchema,
    /** this node's engine (for the audit and fleet move); the first one is the manager fleet deploys through */
    host: dockerHostSchema,
    /**
     * `gvisor`: a sandbox node, whose engine's default runtime is runsc and which carries the node label
     * hardened-fleet.sandbox=gvisor; the customers of sandboxed plans go there, and only they (docs/sandbox.md)
     */
    sandbox: z.enum(SANDBOXES, { error: `must be one of ${SANDBOXES.join(", ")}` }).default("none"),
  })).min(1, { error: "must list at least one node (the first is the manager fleet deploys through)" }),
  /** seconds a new task must stay healthy before Swarm counts the update as done (else it rolls back) */
  monitorSeconds: z.number().int().min(1).max(600).default(10),
  /**
   * Customer overlays are encrypted between nodes (IPsec); set this only when the nodes cannot do it
   * (a kernel without ESP): overlays are then made unencrypted and `fleet audit` reports them as waived.
   */
  unencryptedOverlays: z.strictObject({
    reason: z.string({ error: "must say why customer traffic may cross between nodes unencrypted, e.g. reason: 'the nodes' kernel has no IPsec ESP'" })
      .trim()
      .min(10, { error: "must say why customer traffic may cross between nodes unencrypted (at least 10 characters), e.g. 'the nodes' kernel has no IPsec ESP'" }),
  }).optional(),
}, {
  error: (issue) => issue.input === undefined
    ? "is required with target: swarm: list the nodes, e.g. swarm: {nodes: [{name: node1, host: ssh://ops@node1}]} (docs/swarm.md)"
    : undefined,
}).superRefine((swarm, ctx) => {
  const names = swarm.nodes.map((n) => n.name);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length > 0) {
    ctx.addIssue({ code: "custom", path: ["nodes"], input: twice, message: `names ${twice.join(", ")} more than once: each node needs its own name` });
  }
});

/** A duration like 30m, 6h or 1d. */
const DURATION_PATTERN = /^([1-9][0-9]{0,4})([mhd])$/;
const durationSchema = z.string().regex(DURATION_PATTERN, { error: "must be a duration like 30m, 6h or 1d" });

/** Seconds in a duration of durationSchema. Pure. */
export function durationSeconds(text: string): number {
  const m = DURATION_PATTERN.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * { m: 60, h: 3600, d: 86400 }[m[2] as "m" | "h" | "d"];
}

/**
 * Where restic keeps an environment's backups, one repository per customer under it: an absolute path
 * on the engine's host (local), or off the host: rest:http(s)://host[:port]/path (restic's
 * rest-server), s3:https://host[:port]/bucket[/prefix], sftp:user@host:/path. Credentials never go
 * here: the repository's own password is the secret hardened-fleet:backupPassword, the account's the
 * secret hardened-fleet:backupCredential.
 */
export const BACKUP_REPOSITORY_PATTERN =
  /^(?:\/[A-Za-z0-9._\/-]*[A-Za-z0-9._-]|rest:https?:\/\/[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:\/[A-Za-z0-9._\/-]*)?|s3:https?:\/\/[A-Za-z0-9.-]+(?::[0-9]{1,5})?\/[a-z0-9][a-z0-9.-]*[a-z0-9](?:\/[A-Za-z0-9._\/-]*)?|sftp:[a-z_][a-z0-9_-]*@[A-Za-z0-9.-]+:\/[A-Za-z0-9._\/-]*)$/;

export const backupSchema = z.strictObject({
  repository: z.string({ error: "must be a restic repository: an absolute path, rest:http(s)://host:port/path, s3:https://host/bucket or sftp:user@host:/path" })
    .regex(BACKUP_REPOSITORY_PATTERN, {
      error: "must be an absolute path (on the engine's host), rest:http(s)://host[:port]/path, s3:https://host[:port]/bucket[/prefix] " +
        "or sftp:user@host:/path, without credentials (they are secrets: hardened-fleet:backupCredential)",
    }),
  /** the account on the repository's server: rest-server's user, the S3 access key id (sftp: in the URL) */
  username: z.string().regex(/^[A-Za-z0-9._@-]{1,128}$/, { error: "must be an account name (letters, digits, . _ @ -)" }).optional(),
  /** how often each customer is backed up; the customers' backups are spread over this interval */
  schedule: durationSchema.refine((d) => !DURATION_PATTERN.test(d) || durationSeconds(d) >= 300, { error: "must be at least 5m" }).default("24h"),
  /** how many snapshots `fleet backup prune` keeps: the newest of each of the last N hours, days, ISO weeks, months */
  retention: z.strictObject({
    hourly: z.number().int().min(0).max(1000).default(24),
    daily: z.number().int().min(0).max(1000).default(7),
    weekly: z.number().int().min(0).max(1000).default(4),
    monthly: z.number().int().min(0).max(1000).default(12),
  }).prefault({}).refine((r) => r.hourly + r.daily + r.weekly + r.monthly > 0, { error: "must keep at least one snapshot" }),
  /** seconds a customer may stay paused for one consistent snapshot; the backup fails (and the customer resumes) after it */
  maxPauseSeconds: z.number().int().min(5).max(3600).default(300),
  /** sftp: the server's host key, as in known_hosts without the name (e.g. ssh-ed25519 AAAA...): checked on every connection */
  sftpHostKey: z.string().regex(/^(?:ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) [A-Za-z0-9+/=]{20,}$/, {
    error: "must be the server's public host key: its type and base64, e.g. 'ssh-ed25519 AAAAC3...' (ssh-keyscan <host> prints it)",
  }).optional(),
}).superRefine((b, ctx) => {
  if (b.repository.startsWith("sftp:") && b.sftpHostKey === undefined) {
    ctx.addIssue({ code: "custom", path: ["sftpHostKey"], input: undefined,
      message: "is required with an sftp: repository: the server's host key, so a job never talks to another machine (ssh-keyscan <host> prints it)" });
  }
});

/** An environment's backups, when it has them; a local path keeps them on the engine's own host. */
export function isOffHost(repository: string): boolean {
  return !repository.startsWith("/");
}

/**
 * How `fleet watch` watches the environment (docs/watch.md). Alerts go to a chat webhook when the
 * secret hardened-fleet:alertWebhookUrl is set, and by mail when `email` is (its password: the secret
 * hardened-fleet:smtpPassword).
 */
export const watchSchema = z.strictObject({
  /** seconds between two end-to-end probes of a customer */
  intervalSeconds: z.number().int().min(1, { error: "must be at least 1 (seconds)" }).max(3600, { error: "must be at most 3600 (seconds)" }).default(15),
  /** a probe without a whole answer within this is a failure */
  timeoutSeconds: z.number().int().min(1, { error: "must be at least 1 (seconds)" }).max(60, { error: "must be at most 60 (seconds)" }).default(5),
  /** failed probes in a row that make a customer down (so a frozen one is down within this many intervals) */
  downAfterFailures: z.number().int().min(1).max(20).default(2),
  /** good probes in a row that end an incident */
  upAfterSuccesses: z.number().int().min(1).max(20).default(2),
  /** restarts, not yet stable again, that make a restart loop */
  restartLoopAfter: z.number().int().min(2).max(50).default(3),
  /** a certificate the edge shows that expires within this many days is an incident (when renewal is also late) */
  certificateWarningDays: z.number().int().min(1).max(90).default(14),
  /** seconds between two samples of each customer's CPU and memory (fleet usage; Prometheus's gauges) */
  usageSampleSeconds: z.number().int().min(2, { error: "must be at least 2 (seconds)" }).max(3600, { error: "must be at most 3600 (seconds)" }).default(60),
  /** samples older than this many days are removed: fleet usage has nothing before (bill within it) */
  usageRetentionDays: z.number().int().min(1, { error: "must be at least 1 (day)" }).max(3650).default(45),
  email: z.strictObject({
    host: z.string().regex(/^[A-Za-z0-9.-]+$/, { error: "must be a host name or IPv4 address" }),
    /** 587: STARTTLS, required (mail never goes in clear text); 465: TLS from the start */
    port: hostPortSchema.default(587),
    from: z.email({ error: "must be an e-mail address" }),
    to: z.array(z.email({ error: "must be an e-mail address" })).min(1, { error: "must name at least one address" }),
    /** the SMTP account; its password is the secret hardened-fleet:smtpPassword */
    username: z.string().min(1).optional(),
  }).optional(),
}).refine((w) => w.timeoutSeconds <= w.intervalSeconds, { path: ["timeoutSeconds"], error: "must be at most intervalSeconds: a probe ends before the next one starts" })
  .prefault({});

/** The settings every environment has, whatever its target. */
/** Severities a vulnerability finding can have, lowest first (the scanner's own names, lowercase). */
export const SEVERITIES = ["unknown", "low", "medium", "high", "critical"] as const;

/** A finding prod accepts for a while: which one, why, and until when (the end of that day, UTC). */
const waiverSchema = z.strictObject({
  /** the advisory id as the scanner reports it: CVE-2023-45853, GHSA-xxxx-xxxx-xxxx, DLA-1234-1 */
  id: z.string().regex(/^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*$/, { error: "must be an advisory id like CVE-2023-45853 or GHSA-abcd-efgh-ijkl" }),
  /** only for this package (the installed package's name, e.g. zlib1g); every package when unset */
  package: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.+_:@/-]*$/, { error: "must be a package name as the scanner reports it, like zlib1g" }).optional(),
  reason: z.string().min(10, { error: "must say why the finding is accepted (at least 10 characters)" }),
  // an unquoted date is a YAML timestamp to Pulumi's config reader, which hands it over as "2027-01-31 00:00:00 +0000 UTC"
  expires: z.preprocess((v) => (typeof v === "string" ? v.replace(/^(\d{4}-\d{2}-\d{2})(?:[ T]00:00:00(?:\.0+)?(?:Z| ?\+0000(?: UTC)?)?)$/, "$1") : v), z.string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, { error: "must be a date YYYY-MM-DD: a waiver always ends, and is reviewed then" })
    .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d), {
      error: "must be a real calendar date YYYY-MM-DD",
    })),
});

/** PEM text of a public key (SPKI); parsed here so a pasted private key or a cut line fails at load. */
const publicKeyPemSchema = z.string().refine((pem) => {
  if (!/^-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----\s*$/.test(pem.trim())) return false;
  try {
    const key = createPublicKey(pem);
    return key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1";
  } catch {
    return false;
  }
}, { error: "must be the ECDSA P-256 public key (PEM, -----BEGIN PUBLIC KEY-----) that staging signs with: print it with `fleet signing-key <staging env>`" });

/**
 * The image's supply chain (docs/supply-chain.md): the build environment makes an SBOM, scans and
 * signs every image; a promoting environment verifies the signature and refuses findings at or above
 * `failOn` unless waived.
 */
export const supplyChainSchema = z.strictObject({
  /** the lowest severity that stops a promotion; none: scan and record, never refuse (not in production) */
  failOn: z.enum([...SEVERITIES, "none"], { error: `must be one of ${[...SEVERITIES, "none"].join(", ")}` }).default("critical"),
  /** accepted findings, each with a reason and an expiry date; an expired waiver stops promotions again */
  allow: z.array(waiverSchema).default([]),
  /** the scanner's database: a directory holding db/trivy.db and db/metadata.json, or a trivy db.tar.gz; default: the user's cache, filled by `fleet scan-db update` */
  database: z.string().min(1).optional(),
  /** promote mode: the public key the image's signature must verify with; unset: the key the source stack publishes (fleet warns in production) */
  publicKey: publicKeyPemSchema.optional(),
});

/**
 * How the policy pack (policies/, docs/policy-pack.md) judges this environment's deployments: the
 * enforcement level of every policy, or of each, and exemptions, each with its reason. Production
 * enforces every policy (mandatory, and a preview before anything is touched); exemptions stay possible.
 */
const policyLevelSchema = z.enum(["mandatory", "advisory", "disabled"], { error: "must be 'mandatory', 'advisory' or 'disabled'" });
const policyNameSchema = z.enum(POLICY_NAMES as [string, ...string[]], { error: `must be one of the pack's policies: ${POLICY_NAMES.join(", ")}` });
export const policySchema = z.strictObject({
  /** one level for every policy, or a level per policy (the others: mandatory) */
  enforcement: z.union([policyLevelSchema, z.partialRecord(policyNameSchema, policyLevelSchema)]).default("mandatory"),
  exemptions: z.array(z.strictObject({
    policy: policyNameSchema,
    /** the resource's Pulumi name, its container or service name, or its URN; * matches anything */
    resource: z.string().min(1, { error: "must name the resource (its Pulumi name, container name or URN; * matches anything)" }),
    reason: z.string().trim().min(10, { error: "must say why this resource may break the policy (at least 10 characters)" }),
  })).default([]),
});

const environmentFields = {
  name: environmentNameSchema,
  /**
   * This environment is the local demo: its stacks may use the passphrase documented in the README.
   * Any other environment's stacks need PULUMI_CONFIG_PASSPHRASE; production can never be the demo.
   */
  localDemo: z.boolean().default(false),
  tier: z.enum(["staging", "production"], { error: "must be 'staging' or 'production'" }),
  image: z.discriminatedUnion("mode", [buildImageSchema, promoteImageSchema], {
    error: "mode must be 'build' (staging builds the image) or 'promote' (runs an image that passed another stack)",
  }),
  app: appSchema.prefault({}),
  /** customer containers publish no ports since the edge proxy: a clear error instead of "unrecognized key" */
  publish: z.unknown().optional().refine((v) => v === undefined, {
    error: "is no longer used: customer containers publish no ports; each customer answers at https://<customer>.<edge.domain> " +
      "through the environment's edge proxy. Remove publish and set edge (address, domain, ports): see docs/edge.md",
  }),
  edge: edgeSchema,
  plans: z
    .record(labelSchema, planSchema)
    .refine((plans) => Object.keys(plans).length > 0, { error: "must define at least one plan" }),
  capabilities: z.strictObject({ add: z.array(capabilityAddSchema).default([]) }).prefault({}),
  policy: policySchema.prefault({}),
  logging: z
    .strictObject({
      maxSize: z.string().regex(/^[1-9][0-9]*[kmg]$/, { error: "must be a size like 10m" }).default("10m"),
      maxFile: z.number().int().min(1).max(20).default(3),
      /** the environment's log collector (docs/logs.md): every customer's lines, kept past its containers */
      collector: z
        .strictObject({
          base: imageRefSchema.default("hardened-fleet/log-base:bookworm"),
          /** what one customer's lines may take on disk, rotated files included */
          perCustomerMb: z.number().int().min(2, { error: "must be at least 2 (MiB)" }).max(10240).default(20),
          /** lines older than this many days are removed with their file */
          maxAgeDays: z.number().int().min(1).max(3650).default(14),
        })
        .prefault({}),
    })
    .prefault({}),
  restart: z
    .strictObject({
      maxRetries: z.number().int()
        .min(1, { error: "must be at least 1 (Docker reads 0 as 'retry forever')" })
        .max(5, { error: "must be at most 5" })
        .default(5),
    })
    .prefault({}),
  volumes: z.strictObject({ protect: z.boolean().default(false) }).prefault({}),
  deploy: z.strictObject({ healthTimeoutSeconds: z.number().int().min(10).max(1800).default(120) }).prefault({}),
  /** restic backups of the customers' data volumes (docs/backups.md); required off the host in production */
  backup: backupSchema.optional(),
  /** what `fleet watch` probes and where it sends alerts (docs/watch.md) */
  watch: watchSchema,
  supplyChain: supplyChainSchema.prefault({}),
  rollout: z.strictObject({
    waveSize: z.number().int().min(1).default(5),
    // customers of one wave deployed at the same time; default: one per CPU core of the machine running fleet
    concurrency: z.number().int().min(1).max(64).optional(),
  }).prefault({}),
};

/** target: docker (the default): one host, a container per customer. */
const dockerEnvironmentSchema = z.strictObject({
  ...environmentFields,
  target: z.literal("docker").default("docker"),
  swarm: z.undefined({ error: "is only for target: swarm: set target: swarm, or remove swarm" }).optional(),
  registry: registrySchema.optional(),
});

/** target: swarm: a Swarm service per customer, over swarm.nodes, every image through the registry. */
const swarmEnvironmentSchema = z.strictObject({
  ...environmentFields,
  target: z.literal("swarm"),
  swarm: swarmSchema,
  registry: requiredRegistrySchema,
});

export const environmentSchema = z
  .discriminatedUnion("target", [dockerEnvironmentSchema, swarmEnvironmentSchema], {
    error: "must be 'docker' (one host) or 'swarm' (a Docker Swarm cluster, with swarm.nodes)",
  })
  .superRefine((env, ctx) => {
    if (env.tier !== "production") return;
    if (env.image.mode !== "promote") {
      ctx.addIssue({ code: "custom", path: ["image", "mode"], input: env.image.mode,
        message: "must be 'promote' in production: production never rebuilds, it runs an image that passed staging" });
    }
    if (!PINNED_IMAGE_PATTERN.test(env.image.base)) {
      ctx.addIssue({ code: "custom", path: ["image", "base"], input: env.image.base,
        message: "must be pinned by digest in production, like python:3.11-slim@sha256:<64 hex>" });
    }
    if (env.localDemo) {
      ctx.addIssue({ code: "custom", path: ["localDemo"], input: env.localDemo,
        message: "must be false in production: the documented demo passphrase never protects production secrets" });
    }
    if (!env.backup || !isOffHost(env.backup.repository)) {
      ctx.addIssue({ code: "custom", path: ["backup", "repository"], input: env.backup?.repository,
        message: "must be an off-host repository in production (rest:, s3: or sftp:): a copy on the same host dies with its disk (docs/backups.md)" });
    }
    if (env.supplyChain.failOn === "none") {
      ctx.addIssue({ code: "custom", path: ["supplyChain", "failOn"], input: "none",
        message: "cannot be 'none' in production: production refuses images with known critical vulnerabilities (waive single findings with supplyChain.allow)" });
    }
    const weakened = typeof env.policy.enforcement === "string"
      ? (env.policy.enforcement === "mandatory" ? [] : ["every policy"])
      : Object.entries(env.policy.enforcement).filter(([, level]) => level !== "mandatory").map(([name]) => name);
    if (weakened.length > 0) {
      ctx.addIssue({ code: "custom", path: ["policy", "enforcement"], input: env.policy.enforcement,
        message: `must be 'mandatory' in production (not for ${weakened.join(", ")}): production enforces every policy of the pack; exempt single resources with policy.exemptions, each with its reason` });
    }
    if (!env.volumes.protect) {
      ctx.addIssue({ code: "custom", path: ["volumes", "protect"], input: env.volumes.protect,
        message: "must be true in production: customer data volumes are protected from deletion" });
    }
  });

export const customerSchema = z.strictObject({
  id: customerIdSchema,
  /** the environment stack this customer runs in (staging, prod) */
  environment: environmentNameSchema,
  plan: labelSchema,
  /** from before the edge proxy, when each customer published a host port: ignored, and no longer written */
  port: z.number().int().min(1024).max(65535).optional(),
  /** an image this customer stays on instead of the environment's (set by rollout and rollback) */
  image: runnableImageSchema.optional(),
  /** target: swarm only: the node (swarm.nodes[].name) its service and data volume live on; chosen by fleet provision, changed by fleet move */
  node: labelSchema.optional(),
});

export type EdgeConfig = z.output<typeof edgeSchema>;
export type EnvironmentConfig = z.output<typeof environmentSchema>;
/** The config of an environment of one target: `EnvironmentOf<"swarm">` has `swarm` and `registry`. */
export type EnvironmentOf<K extends EnvironmentConfig["target"]> = Extract<EnvironmentConfig, { target: K }>;
export type DockerEnvironmentConfig = EnvironmentOf<"docker">;
export type SwarmEnvironmentConfig = EnvironmentOf<"swarm">;
export type TargetKind = EnvironmentConfig["target"];
export type EnvironmentInput = z.input<typeof environmentSchema>;
export type CustomerConfig = z.output<typeof customerSchema>;
export type Plan = z.output<typeof planSchema>;
export type AppSettings = EnvironmentConfig["app"];
export type BuildImageConfig = z.output<typeof buildImageSchema>;
export type RegistryConfig = z.output<typeof registrySchema>;
export type SwarmConfig = z.output<typeof swarmSchema>;
export type BackupConfig = z.output<typeof backupSchema>;
export type WatchConfig = z.output<typeof watchSchema>;
export type SupplyChainConfig = z.output<typeof supplyChainSchema>;
