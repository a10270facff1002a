/** The audit's checks as a pure function of inspect data: here the "ports" check since the edge proxy. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type Dockerode from "dockerode";
import { CHECKS, runChecks, type Probes } from "../../src/audit/checks";
import { parseEnvironmentConfig } from "../../src/config/load";
import { edgeProxySpec } from "../../src/edge/edgeSpec";
import { toEngineCreateOptions } from "../../src/engine/createOptions";
import { serviceSpec, type ContainerSpec } from "../../src/hardening/serviceSpec";
import { rawEnvironment } from "../support/fixtures";

const env = parseEnvironmentConfig(rawEnvironment("staging"));
const IMAGE = `sha256:${"d".repeat(64)}`;
const customer = serviceSpec(env, { id: "acme", environment: "staging", plan: "starter" }, IMAGE);
const edge = edgeProxySpec(env, IMAGE);

type Bindings = Record<string, { HostIp: string; HostPort: string }[]>;

/** What `docker inspect` reports of a running, healthy container made from `spec` (the fields the checks read). */
function inspectOf(spec: ContainerSpec, change: { bindings?: Bindings; publishAll?: boolean } = {}): Dockerode.ContainerInspectInfo {
  const opts = toEngineCreateOptions(spec, {});
  return {
    Name: `/${spec.containerName}`,
    Image: spec.image,
    Config: { User: opts.User, Labels: opts.Labels, Healthcheck: opts.Healthcheck },
    HostConfig: {
      ...opts.HostConfig,
      PortBindings: change.bindings ?? opts.HostConfig!.PortBindings,
      PublishAllPorts: change.publishAll ?? false,
    },
    State: { Running: true, Health: { Status: "healthy" } },
    NetworkSettings: { Networks: { [spec.networkName]: {} } },
    Mounts: [{ Type: "volume", Name: spec.data.volume, Source: `/var/lib/docker/volumes/${spec.data.volume}/_data`, Destination: spec.data.target }],
  } as unknown as Dockerode.ContainerInspectInfo;
}

const image = { Config: { User: "1000:1000", Healthcheck: { Test: ["CMD", "/healthcheck"] } } } as unknown as Dockerode.ImageInspectInfo;
const probes: Probes = {
  procStatus: "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n",
  foreignFiles: "",
  buildLeftovers: "",
};

function checked(info: Dockerode.ContainerInspectInfo) {
  const results = runChecks(info, image, probes);
  const ports = results.find((r) => r.id === "ports")!;
  return { results, ports, failed: results.filter((r) => !r.ok).map((r) => r.id) };
}

describe("audit checks", () => {
  it("a customer's container as deployed passes every check, publishing nothing", () => {
    const { results, ports, failed } = checked(inspectOf(customer));
    assert.deepEqual(results.map((r) => r.id), Object.keys(CHECKS));
    assert.deepEqual(failed, []);
    assert.equal(ports.detail, "none published");
  });

  it("a customer's container that publishes a port fails 'ports', even on loopback, and only that check", () => {
    const { ports, failed } = checked(inspectOf(customer, { bindings: { "8000/tcp": [{ HostIp: "127.0.0.1", HostPort: "18101" }] } }));
    assert.deepEqual(failed, ["ports"]);
    assert.match(ports.detail, /publishes 127\.0\.0\.1:18101: only the edge proxy publishes ports/);
  });

  it("a customer's container published on every address fails for both reasons", () => {
    const { ports, failed } = checked(inspectOf(customer, { bindings: { "8000/tcp": [{ HostIp: "0.0.0.0", HostPort: "18101" }] } }));
    assert.deepEqual(failed, ["ports"]);
    assert.match(ports.detail, /only the edge proxy publishes ports/);
    assert.match(ports.detail, /8000\/tcp is published on all addresses/);
  });

  it("a customer's container with PublishAllPorts fails", () => {
    const { ports } = checked(inspectOf(customer, { publishAll: true }));
    assert.equal(ports.ok, false);
    assert.match(ports.detail, /PublishAllPorts is on/);
  });

  it("the edge proxy, labelled edge-proxy, passes with its two ports bound to 127.0.0.1", () => {
    const { ports, failed } = checked(inspectOf(edge));
    assert.deepEqual(failed, []);
    assert.equal(ports.ok, true);
    assert.equal(ports.detail, "127.0.0.1:443,127.0.0.1:80");
  });

  it("the edge proxy bound to 0.0.0.0 (or to no address, or ::) fails 'ports'", () => {
    for (const hostIp of ["0.0.0.0", "", "::"]) {
      const { ports, failed } = checked(inspectOf(edge, { bindings: {
        "8443/tcp": [{ HostIp: hostIp, HostPort: "443" }],
        "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "80" }],
      } }));
      assert.deepEqual(failed, ["ports"], `HostIp ${JSON.stringify(hostIp)}`);
      assert.equal(ports.detail, "8443/tcp is published on all addresses");
    }
  });

  it("only the role label makes a container the edge proxy: the same ports on a customer's container fail", () => {
    const pretender = { ...edge, labels: { ...customer.labels } };
    const { ports } = checked(inspectOf(pretender));
    assert.equal(ports.ok, false);
    assert.match(ports.detail, /only the edge proxy publishes ports/);
  });
});
