/** The edge proxy, computed from config alone: its hardened container, customers' URLs, route files and commands. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseEnvironmentConfig } from "../../src/config/load";
import {
  EDGE_HTTPS_CONTAINER_PORT, EDGE_HTTP_CONTAINER_PORT, customerHostname, customerUrl, edgeProxySpec,
} from "../../src/edge/edgeSpec";
import {
  EDGE_CADDYFILE, EDGE_CA_ROOT, EDGE_ROUTES_DIR, reloadCommand, removeRouteCommand, routeFile, routeFileName,
} from "../../src/edge/routes";
import { serviceSpec } from "../../src/hardening/serviceSpec";
import { toContainerArgs } from "../../components/containerArgs";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { accessLogRoll } from "../../src/logs/retention";
import { projectDir, rawEnvironment } from "../support/fixtures";

const staging = parseEnvironmentConfig(rawEnvironment("staging"));
const prod = parseEnvironmentConfig(rawEnvironment("prod"));
const IMAGE = `sha256:${"c".repeat(64)}`;
const ASSETS = path.join(projectDir, "src", "edge", "assets");

describe("customer hostnames and URLs", () => {
  it("a customer answers at <customer>.<edge.domain>", () => {
    assert.equal(customerHostname({ domain: "staging.example.com" }, "acme"), "acme.staging.example.com");
    assert.equal(customerHostname(staging.edge, "eu-acme"), "eu-acme.staging.localhost");
  });

  it("the URL names no port on 443, and the port otherwise", () => {
    assert.equal(customerUrl({ domain: "staging.example.com", httpsPort: 443 }, "acme"), "https://acme.staging.example.com");
    assert.equal(customerUrl({ domain: "prod.localhost", httpsPort: 8443 }, "acme"), "https://acme.prod.localhost:8443");
    assert.equal(customerUrl(staging.edge, "acme"), "https://acme.staging.localhost");
    assert.equal(customerUrl(prod.edge, "acme"), "https://acme.prod.localhost:8443");
  });
});

describe("route files and commands", () => {
  it("a route file per customer, named after it", () => {
    assert.equal(routeFileName("acme"), "acme.caddy");
    assert.equal(EDGE_ROUTES_DIR, "/data/routes");
    assert.equal(EDGE_CA_ROOT, "/data/caddy/pki/authorities/local/root.crt");
  });

  it("tls internal: the hostname, the local CA and the one container the traffic goes to", () => {
    const text = routeFile({
      environment: "staging", customerId: "acme", hostname: "acme.staging.localhost",
      upstreamContainer: "hf-staging-acme-0123abcd", upstreamPort: 8000, tls: { tls: "internal" },
      accessLog: { maxMb: 4, keep: 4, keepForHours: 336 },
    });
    assert.equal(text, [
      "# acme in staging: written by hardened-fleet (customer stack staging-acme); do not edit",
      "acme.staging.localhost {",
      "\ttls internal",
      "\treverse_proxy hf-staging-acme-0123abcd:8000 {",
      "\t\tlb_try_duration 5s",
      "\t\tlb_try_interval 250ms",
      "\t}",
      "\tlog {",
      "\t\toutput file /data/access/acme/access.log {",
      "\t\t\troll_size 4MiB",
      "\t\t\troll_keep 4",
      "\t\t\troll_keep_for 336h",
      "\t\t}",
      "\t\tformat json",
      "\t}",
      "}",
      "",
    ].join("\n"));
  });

  it("tls acme: the account e-mail instead of the local CA", () => {
    const text = routeFile({
      environment: "prod", customerId: "beta", hostname: "beta.prod.example.com",
      upstreamContainer: "hf-prod-beta-89abcdef", upstreamPort: 8080, tls: { tls: "acme", acmeEmail: "ops@example.com" },
      accessLog: accessLogRoll(parseEnvironmentConfig({ ...rawEnvironment("prod"), logging: { collector: { perCustomerMb: 5, maxAgeDays: 1 } } })),
    });
    assert.equal(text, [
      "# beta in prod: written by hardened-fleet (customer stack prod-beta); do not edit",
      "beta.prod.example.com {",
      "\ttls ops@example.com",
      "\treverse_proxy hf-prod-beta-89abcdef:8080 {",
      "\t\tlb_try_duration 5s",
      "\t\tlb_try_interval 250ms",
      "\t}",
      "\tlog {",
      "\t\toutput file /data/access/beta/access.log {",
      "\t\t\troll_size 1MiB",
      "\t\t\troll_keep 4",
      "\t\t\troll_keep_for 24h",
      "\t\t}",
      "\t\tformat json",
      "\t}",
      "}",
      "",
    ].join("\n"));
  });

  it("reload checks and applies the whole config through Caddy's admin address; removal removes one file", () => {
    assert.deepEqual(reloadCommand(),
      ["caddy", "reload", "--config", "/etc/hardened-fleet/Caddyfile", "--adapter", "caddyfile", "--address", "localhost:2019"]);
    assert.deepEqual(removeRouteCommand("acme"), ["rm", "-f", "/data/routes/acme.caddy"]);
  });

  it("the image's Caddyfile and Dockerfile agree with the spec: container ports, routes, admin address, config path", () => {
    const caddyfile = fs.readFileSync(path.join(ASSETS, "Caddyfile"), "utf8");
    assert.match(caddyfile, new RegExp(`^\\s*https_port ${EDGE_HTTPS_CONTAINER_PORT}$`, "m"));
    assert.match(caddyfile, new RegExp(`^\\s*http_port ${EDGE_HTTP_CONTAINER_PORT}$`, "m"));
    assert.match(caddyfile, new RegExp(`^import ${EDGE_ROUTES_DIR}/\\*\\.caddy$`, "m"));
    const admin = reloadCommand()[reloadCommand().indexOf("--address") + 1];
    assert.match(caddyfile, new RegExp(`^\\s*admin ${admin}$`, "m"));
    assert.match(caddyfile, /\{\$EDGE_HTTPS_PORT_SUFFIX\}/);
    const dockerfile = fs.readFileSync(path.join(ASSETS, "Dockerfile"), "utf8");
    assert.match(dockerfile, new RegExp(`^COPY Caddyfile ${EDGE_CADDYFILE}$`, "m"));
    assert.match(dockerfile, /^USER 1000:1000$/m);
  });
});

describe("edge proxy spec", () => {
  const spec = edgeProxySpec(prod, IMAGE);

  it("named after the environment and edge.name, on its own network and volume", () => {
    assert.equal(spec.containerName, "hf-prod-edge");
    assert.equal(spec.networkName, "hf-prod-edge-net");
    assert.deepEqual(spec.data, { volume: "hf-prod-edge-data", target: "/data" });
    assert.equal(spec.hostname, "edge");
    assert.equal(spec.image, IMAGE);
    const gateway = parseEnvironmentConfig({ ...rawEnvironment("staging"), edge: { domain: "staging.localhost", name: "gateway" } });
    assert.equal(edgeProxySpec(gateway, IMAGE).containerName, "hf-staging-gateway");
  });

  it("hardened like a customer: 1000:1000, every capability dropped and none added, read-only, no-new-privileges", () => {
    assert.equal(spec.user, "1000:1000");
    assert.deepEqual(spec.capDrop, ["ALL"]);
    assert.deepEqual(spec.capAdd, []);
    assert.deepEqual(spec.securityOpt, ["no-new-privileges:true"]);
    assert.equal(spec.readOnlyRootfs, true);
    assert.deepEqual(spec.restart, { policy: "on-failure", maxRetries: 5 });
    assert.deepEqual(spec.healthcheck.test, ["CMD", "/usr/local/bin/edge-healthcheck"]);
    assert.equal(spec.healthTimeoutSeconds, prod.deploy.healthTimeoutSeconds);
  });

  it("its only writable path outside its volume is a noexec tmpfs", () => {
    assert.deepEqual(spec.tmpfs, { "/tmp": "rw,noexec,nosuid,nodev,size=16m,mode=1777" });
    for (const opts of Object.values(spec.tmpfs)) assert.match(opts, /\bnoexec\b.*\bnosuid\b.*\bnodev\b/);
  });

  it("publishes exactly edge.httpsPort and edge.httpPort on edge.address, onto unprivileged container ports", () => {
    assert.deepEqual(spec.publish, [
      { hostIp: "127.0.0.1", hostPort: 8443, containerPort: 8443 },
      { hostIp: "127.0.0.1", hostPort: 8080, containerPort: 8080 },
    ]);
    assert.equal(spec.port, 8443);
    const raw = rawEnvironment("prod");
    raw.edge = { domain: "prod.example.com", address: "203.0.113.7", exposeReason: "customers reach it from the internet",
      tls: "acme", acmeEmail: "ops@example.com" };
    const open = edgeProxySpec(parseEnvironmentConfig(raw), IMAGE);
    assert.deepEqual(open.publish, [
      { hostIp: "203.0.113.7", hostPort: 443, containerPort: EDGE_HTTPS_CONTAINER_PORT },
      { hostIp: "203.0.113.7", hostPort: 80, containerPort: EDGE_HTTP_CONTAINER_PORT },
    ]);
    for (const p of [...spec.publish, ...open.publish]) assert.ok(p.containerPort >= 1024, "a port below 1024 would need NET_BIND_SERVICE");
  });

  it("a reload cannot cut a queued connection: the kernel moves it to the new config's socket (tcp_migrate_req), in both mappings", () => {
    assert.deepEqual(spec.sysctls, { "net.ipv4.tcp_migrate_req": "1" });
    assert.deepEqual(toContainerArgs(spec).sysctls, { "net.ipv4.tcp_migrate_req": "1" });
    assert.deepEqual(toEngineCreateOptions(spec, {}).HostConfig?.Sysctls, { "net.ipv4.tcp_migrate_req": "1" });
    // a customer's container sets none
    const customer = serviceSpec(staging, { id: "acme", environment: "staging", plan: "starter" } as never, IMAGE);
    assert.equal(customer.sysctls, undefined);
    assert.equal("sysctls" in toContainerArgs(customer), false);
  });

  it("the redirect names the HTTPS port only when it is not 443", () => {
    assert.deepEqual(spec.env, { EDGE_HTTPS_PORT_SUFFIX: ":8443" });
    assert.deepEqual(edgeProxySpec(staging, IMAGE).env, { EDGE_HTTPS_PORT_SUFFIX: "" });
  });

  it("limits from edge.resources, swap equal to memory", () => {
    assert.equal(spec.memoryBytes, 128 * 1024 * 1024);
    assert.equal(spec.memorySwapBytes, spec.memoryBytes);
    assert.equal(spec.cpus, 0.5);
    assert.equal(spec.pidsLimit, 256);
    const raw = rawEnvironment("prod");
    raw.edge.resources = { memoryMb: 300, cpus: 2, pids: 1000 };
    const big = edgeProxySpec(parseEnvironmentConfig(raw), IMAGE);
    assert.deepEqual([big.memoryBytes, big.memorySwapBytes, big.cpus, big.pidsLimit], [300 * 1024 * 1024, 300 * 1024 * 1024, 2, 1000]);
    assert.deepEqual(spec.ulimits.map((u) => u.name), ["nofile"]);
    assert.deepEqual(spec.log, { driver: "json-file", opts: { "max-size": "20m", "max-file": "5" } });
  });

  it("labelled as the environment's edge proxy, not as a customer", () => {
    assert.deepEqual(spec.labels, {
      "io.hardened-fleet.managed": "true",
      "io.hardened-fleet.role": "edge-proxy",
      "io.hardened-fleet.environment": "prod",
      "io.hardened-fleet.profile": "1",
    });
    const customer = serviceSpec(prod, { id: "acme", environment: "prod", plan: "starter" }, IMAGE);
    assert.equal(customer.labels["io.hardened-fleet.role"], "customer-service");
  });
});
