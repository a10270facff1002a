// A plain Pulumi program making one Docker container (or Swarm service, or volume) from its stack's
// config: `kind` and `settings` (overrides of the compliant settings below, null removes one). The
// policy pack's tests preview it with one rule broken at a time (test/policy/pack.test.ts).
"use strict";
const docker = require("@pulumi/docker");
const pulumi = require("@pulumi/pulumi");

const config = new pulumi.Config();
const kind = config.get("kind") ?? "container";
const overrides = config.getObject("settings") ?? {};
const DIGEST = "sha256:" + "ab".repeat(32);

function apply(base) {
  const out = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

if (kind === "container") {
  const container = new docker.Container("app", apply({
    name: "policy-fixture-app",
    image: `policy-fixture/app@${DIGEST}`,
    user: "1000:1000",
    capabilities: { drops: ["ALL"] },
    securityOpts: ["no-new-privileges:true"],
    readOnly: true,
    tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=16m" },
    memory: 256,
    cpus: "0.5",
    healthcheck: { tests: ["CMD", "python", "/app/healthcheck.py"], interval: "10s" },
    restart: "on-failure",
    maxRetryCount: 5,
    logDriver: "json-file",
    logOpts: { "max-size": "10m", "max-file": "3" },
    mustRun: false,
    start: false,
  }));
  if (config.getBoolean("gate") !== false) {
    // the PIDs limit: docker.Container has no input for it, so fleet's gate sets it (its compiled
    // module, named by the config: the program runs from a copy)
    const { ContainerGate } = require(config.require("gateModule"));
    new ContainerGate("app-pids", { containerId: container.id, pidsLimit: 128, healthTimeoutSeconds: 30, dockerHost: "" });
  }
} else if (kind === "service") {
  const { taskSpec: taskOverrides, ...rest } = overrides;
  const containerSpec = {
    image: `policy-fixture/app@${DIGEST}`,
    user: "1000:1000",
    capDrops: ["ALL"],
    readOnly: true,
    mounts: [{ type: "tmpfs", target: "/tmp", tmpfsOptions: { sizeBytes: 16 * 1024 * 1024 } }],
    healthcheck: { tests: ["CMD", "python", "/app/healthcheck.py"] },
    ...(taskOverrides?.containerSpec ?? {}),
  };
  new docker.Service("app", {
    name: "policy-fixture-svc",
    taskSpec: {
      containerSpec,
      resources: { limits: { memoryBytes: 256 * 1024 * 1024, nanoCpus: 500000000 } },
      restartPolicy: { condition: "on-failure", maxAttempts: 5 },
      logDriver: { name: "json-file", options: { "max-size": "10m", "max-file": "3" } },
      ...(taskOverrides?.restartPolicy ? { restartPolicy: taskOverrides.restartPolicy } : {}),
    },
    ...rest,
  });
} else if (kind === "volume") {
  new docker.Volume("data", apply({ name: "policy-fixture-data", labels: [{ label: "owner", value: "team-a" }] }));
}
