/**
 * The test and demo cluster that scripts/swarm-cluster.sh makes on one machine (four engines, each
 * in a network namespace, one of them a gVisor sandbox node, and a registry on the manager), as
 * described by its cluster.json; and
 * the environment stack file for it (demo/swarm.ts env-file). Not part of the operator's product: on
 * real hosts the operator writes that file by hand (docs/swarm.md).
 */
import { DEMO_DATABASE } from "./supplyChain";
import * as fs from "node:fs";
import { execFile } from "node:child_process";
import { Document } from "yaml";
import { ENVIRONMENT_KEY, ROLE_KEY } from "../src/config/load";
import type { EnvironmentInput } from "../src/config/schema";
import { DOCKER_HOST_KEY } from "../src/engine/connection";
import { childEnv } from "../src/pulumi/childEnv";

export interface ClusterNode {
  name: string;
  /** the engine's address, e.g. unix:///run/hf-swarm/hfsw/node1.sock */
  host: string;
  /** its address on the cluster's network */
  address: string;
  /** the network namespace it runs in */
  namespace: string;
  /** a sandbox node: its engine's default runtime is runsc, and it has the node label hardened-fleet.sandbox=gvisor; absent: an ordinary node */
  sandbox?: "gvisor";
}

export interface Cluster {
  name: string;
  manager: string;
  nodes: ClusterNode[];
  /** host:port of the registry on the manager */
  registry: string;
  /** the local bases, pushed to the registry: name -> registry/name@sha256:… */
  bases: Record<string, string>;
  /** whether this machine's kernel can do the IPsec (ESP) of encrypted overlays, and what the probe said */
  ipsec?: { ok: boolean; detail: string };
}

export function readCluster(file: string): Cluster {
  let cluster: Cluster;
  try {
    cluster = JSON.parse(fs.readFileSync(file, "utf8")) as Cluster;
  } catch (err) {
    throw new Error(`--cluster ${file}: not a cluster description (${(err as Error).message}); make one with 'bash scripts/swarm-cluster.sh up'`);
  }
  for (const base of ["python-base", "python-builder", "edge-base", "log-base"]) {
    if (!cluster.bases?.[base]) throw new Error(`--cluster ${file}: no pushed base '${base}': run 'bash scripts/swarm-cluster.sh up' again`);
  }
  return cluster;
}

/** The environment config of a staging-tier swarm environment on `cluster`. Pure. */
export function clusterEnvironment(cluster: Cluster, name: string): EnvironmentInput {
  return {
    name,
    tier: "staging",
    localDemo: true,
    target: "swarm",
    swarm: {
      nodes: cluster.nodes.map((n) => ({ name: n.name, host: n.host, ...(n.sandbox ? { sandbox: n.sandbox } : {}) })), monitorSeconds: 5,
      // encrypted overlays need ESP in the kernel: waived, saying so, only where the probe found none
      ...(cluster.ipsec?.ok === false ? { unencryptedOverlays: { reason: `this machine's kernel cannot do IPsec ESP (${cluster.ipsec.detail})` } } : {}),
    },
    registry: { address: cluster.registry },
    image: {
      mode: "build",
      name: "hardened-fleet/customer-app",
      // pinned by the digests the registry gave the local bases: what prod verifies it promotes
      base: cluster.bases["python-base"]!,
      builder: cluster.bases["python-builder"]!,
      appSource: "examples/customer-app",
    },
    app: { port: 8000, healthcheck: { path: "/healthz", intervalSeconds: 2, timeoutSeconds: 3, retries: 3, startPeriodSeconds: 2 } },
    // published inside the manager's namespace only (its own 127.0.0.1)
    edge: { domain: `${name}.localhost`, address: "127.0.0.1", httpsPort: 443, httpPort: 80, base: cluster.bases["edge-base"]! },
    // each node's log collector is built there FROM the log base the node pulled from the registry
    logging: { collector: { base: cluster.bases["log-base"]! } },
    plans: {
      starter: { memoryMb: 128, cpus: 0.25, pids: 64, nofile: 1024, tmpfsMb: 32 },
      standard: { memoryMb: 256, cpus: 0.5, pids: 128, nofile: 2048, tmpfsMb: 64 },
      // its customers run in a gVisor sandbox each, on the cluster's sandbox node
      sandboxed: { memoryMb: 256, cpus: 0.5, pids: 128, nofile: 2048, tmpfsMb: 64, sandbox: "gvisor" },
    },
    deploy: { healthTimeoutSeconds: 120 },
    rollout: { waveSize: 2 },
    // the demo's one-advisory vulnerability database (demo/supplyChain.ts writes it)
    supplyChain: { database: DEMO_DATABASE },
  };
}

/**
 * A production-tier swarm environment on `cluster` that promotes what `fromStack` runs, by repository
 * digest, only when it was built from the base pinned here (the registry's digest of the local base). Pure.
 */
export function clusterProductionEnvironment(cluster: Cluster, name: string, fromStack: string): EnvironmentInput {
  const staging = clusterEnvironment(cluster, name);
  return {
    ...staging,
    tier: "production",
    localDemo: false,
    image: { mode: "promote", fromStack, base: cluster.bases["python-base"]! },
    // beside the staging-tier environment's proxy, in the same namespace
    edge: { ...staging.edge, httpsPort: 8443, httpPort: 8080 },
    volumes: { protect: true },
    // production keeps its backups off the nodes: a rest-server on the cluster's network at .50
    // (none runs there in the demo; the swarm test starts one: test/support/backupHost.ts)
    backup: { repository: `rest:http://${clusterAddress(cluster, 50)}:8000/${name}`, username: "fleet" },
  };
}

/** Another address on the cluster's network: its nodes' /24 with the last number `n`. Pure. */
export function clusterAddress(cluster: Cluster, n: number): string {
  return cluster.nodes[0]!.address.replace(/\.[0-9]+$/, `.${n}`);
}

/** What `demo/swarm.js env-file` writes in the first line of every file it writes: how it knows its own files. */
export const ENV_FILE_MARK = "Written by 'demo/swarm.js env-file'";

/** The mark of files written before the command moved out of the fleet CLI: those are its own files too. */
export const LEGACY_ENV_FILE_MARK = "Written by 'fleet swarm env-file'";

/** Whether a stack file's text is one `demo/swarm.js env-file` (or, before it, `fleet swarm env-file`) wrote: its first line carries a mark. Pure. */
export function isClusterEnvironmentFile(text: string): boolean {
  const first = text.split("\n", 1)[0]!;
  return first.startsWith("# Environment stack '") && (first.includes(ENV_FILE_MARK) || first.includes(LEGACY_ENV_FILE_MARK));
}

/** The text of Pulumi.<name>.yaml for that environment (production with `promoteFrom`), deploying through the cluster's manager. */
export function clusterEnvironmentFile(cluster: Cluster, name: string, promoteFrom?: string): string {
  const env = promoteFrom ? clusterProductionEnvironment(cluster, name, promoteFrom) : clusterEnvironment(cluster, name);
  const doc = new Document({
    config: { [ROLE_KEY]: "environment", [DOCKER_HOST_KEY]: cluster.manager, [ENVIRONMENT_KEY]: env },
  });
  return `# Environment stack '${name}': a ${promoteFrom ? "production" : "staging"}-tier swarm environment on the cluster '${cluster.name}' ` +
    `(scripts/swarm-cluster.sh). ${ENV_FILE_MARK}; not committed.\n` + doc.toString();
}

/**
 * GET a customer's URL from inside a namespace of the cluster (where the edge proxy's 127.0.0.1
 * is), through curl, trusting only `caFile`. Returns the status and body.
 */
export function requestInNamespace(namespace: string, url: string, caFile: string, method = "GET", body?: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const args = ["netns", "exec", namespace, "curl", "-sS", "--max-time", "15", "--cacert", caFile,
    "--resolve", `${u.hostname}:${u.port || 443}:127.0.0.1`, "-X", method, "-w", "\n%{http_code}", url];
  if (body !== undefined) args.push("-H", "content-type: application/json", "--data-binary", body);
  return new Promise((resolve, reject) => {
    execFile("ip", args, { maxBuffer: 16 * 1024 * 1024, env: childEnv(process.env, "base") }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${method} ${url} in namespace ${namespace}: ${stderr.trim() || err.message}`));
      const cut = stdout.lastIndexOf("\n");
      resolve({ status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) });
    });
  });
}
