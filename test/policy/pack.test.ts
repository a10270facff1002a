/**
 * The policy pack (policies/) through the real `pulumi` CLI of the project's toolchain, as a Pulumi
 * user runs it on a program of their own: `pulumi preview --policy-pack <policies>` on a plain program
 * (test/policy/program: a docker.Container, a docker.Service or a docker.Volume from its stack's
 * config, nothing of fleet but, in one case, fleet's ContainerGate for the PIDs limit).
 *
 * Each policy has a program that breaks exactly that rule: the preview fails, naming that policy and
 * no other, with the policy's message; the compliant program passes. Then the pack's config: an
 * exemption with its reason lets a resource through, one without a reason is refused by the pack's
 * config schema, and an advisory level warns without failing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fixtureProgram, type Preview, type ProgramCase as Case } from "../support/policyProgram";

/** Each policy, and the one change of the compliant program that breaks it. */
const BREAKS: [policy: string, change: Omit<Case, "stack">][] = [
  ["non-root-user", { settings: { user: "0:0" } }],
  ["capabilities-dropped", { settings: { capabilities: { drops: ["ALL"], adds: ["NET_ADMIN"] } } }],
  ["no-new-privileges", { settings: { securityOpts: null } }],
  ["read-only-root", { settings: { readOnly: false } }],
  ["resource-limits", { settings: { memory: null } }],
  ["pids-limit", { gate: false }],
  ["healthcheck", { settings: { healthcheck: null } }],
  ["no-host-ports", { settings: { ports: [{ internal: 8000, external: 18080 }] } }],
  ["no-host-access", { settings: { volumes: [{ hostPath: "/var/run/docker.sock", containerPath: "/var/run/docker.sock" }] } }],
  ["restart-bounded", { settings: { restart: "always" } }],
  ["log-rotation", { settings: { logOpts: null } }],
  ["image-pinned-by-digest", { settings: { image: "policy-fixture/app:latest" } }],
  ["volume-owner-label", { kind: "volume", settings: { labels: null } }],
];

describe("the policy pack on a program that has nothing to do with fleet, through the real pulumi CLI", () => {
  const fixture = fixtureProgram();

  // the previews run three at a time (each is a few processes mostly waiting on each other)
  const cases = new Map<string, Case>();
  const results = new Map<string, Promise<Preview>>();
  const add = (c: Case) => cases.set(c.stack, c);
  add({ stack: "compliant" });
  add({ stack: "prod-compliant" });
  add({ stack: "tagged-staging", settings: { image: "policy-fixture/app:latest" } });
  for (const [policy, change] of BREAKS) add({ stack: policy === "image-pinned-by-digest" ? "prod-unpinned" : `breaks-${policy}`, ...change });
  add({ stack: "service", kind: "service" });
  add({ stack: "service-exempted", kind: "service", packConfig: {
    "no-new-privileges": { exemptions: [{ resource: "policy-fixture-svc", reason: "the nodes set no-new-privileges daemon-wide" }] },
    "pids-limit": { exemptions: [{ resource: "app", reason: "the nodes' default-pids-limit bounds every task" }] },
  } });
  add({ stack: "service-writable", kind: "service", settings: { taskSpec: { containerSpec: { readOnly: false } } }, packConfig: {
    "no-new-privileges": "disabled", "pids-limit": "disabled" } });
  add({ stack: "exempted", settings: { readOnly: false }, packConfig: {
    "read-only-root": { exemptions: [{ resource: "policy-fixture-*", reason: "a legacy app that writes its own code directory; replaced next quarter" }] } } });
  add({ stack: "exemption-without-reason", settings: { readOnly: false }, packConfig: {
    "read-only-root": { exemptions: [{ resource: "app", reason: "legacy" }] } } });
  add({ stack: "advisory", settings: { readOnly: false }, packConfig: { "read-only-root": "advisory" } });

  before(() => {
    const queue = [...cases.values()];
    const settle = new Map<string, (p: Preview) => void>();
    for (const c of queue) results.set(c.stack, new Promise((resolve) => settle.set(c.stack, resolve)));
    const worker = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        // a case that cannot run at all (its stack not made) is reported by its own test
        settle.get(c.stack)!(await fixture.preview(c).catch((err: Error) => ({ code: -1, output: err.message, violations: new Map() })));
      }
    };
    void Promise.all([worker(), worker(), worker()]);
  });

  after(() => fixture.remove());

  const result = (stack: string) => results.get(stack)!;
  const show = (p: Preview) => `exit ${p.code}, violations ${JSON.stringify([...p.violations])}\n${p.output.slice(-3000)}`;

  it("the compliant program passes every policy, in production too", async () => {
    for (const stack of ["compliant", "prod-compliant"]) {
      const p = await result(stack);
      assert.equal(p.code, 0, show(p));
      assert.equal(p.violations.size, 0, show(p));
      assert.match(p.output, /hardened-fleet@v0\.1\.0/, "the pack ran");
    }
  });

  for (const [policy] of BREAKS) {
    it(`${policy}: a program breaking only that rule fails at preview with the policy's message`, async () => {
      const p = await result(policy === "image-pinned-by-digest" ? "prod-unpinned" : `breaks-${policy}`);
      assert.notEqual(p.code, 0, show(p));
      assert.deepEqual([...p.violations], [[policy, "mandatory"]], show(p));
      // the message says what is wrong and how to fix it
      assert.match(p.output, /docker\.(Container|Volume) (app|data): /, show(p));
    });
  }

  it("an image pinned by tag passes outside production (image-pinned-by-digest applies to prod stacks)", async () => {
    const p = await result("tagged-staging");
    assert.equal(p.code, 0, show(p));
    assert.equal(p.violations.size, 0, show(p));
  });

  it("docker.Service: the provider cannot carry no-new-privileges or a PIDs limit, which the pack says; exempted with reasons, it passes", async () => {
    const plain = await result("service");
    assert.notEqual(plain.code, 0, show(plain));
    assert.deepEqual([...plain.violations.keys()].sort(), ["no-new-privileges", "pids-limit"], show(plain));
    assert.match(plain.output, /docker\.Service cannot set no-new-privileges/);
    const exempted = await result("service-exempted");
    assert.equal(exempted.code, 0, show(exempted));
    assert.equal(exempted.violations.size, 0, show(exempted));
  });

  it("docker.Service with a writable root fails read-only-root", async () => {
    const p = await result("service-writable");
    assert.notEqual(p.code, 0, show(p));
    assert.deepEqual([...p.violations], [["read-only-root", "mandatory"]], show(p));
  });

  it("the pack's config: an exemption with its reason lets the resource through; one without a reason is refused by the config schema", async () => {
    const exempted = await result("exempted");
    assert.equal(exempted.code, 0, show(exempted));
    assert.equal(exempted.violations.size, 0, show(exempted));
    const refused = await result("exemption-without-reason");
    assert.notEqual(refused.code, 0, show(refused));
    assert.match(refused.output, /read-only-root/, show(refused));
    assert.match(refused.output, /reason/i, show(refused));
    assert.match(refused.output, /10|length/i, show(refused));
  });

  it("an advisory level reports the violation as a warning and the preview succeeds", async () => {
    const p = await result("advisory");
    assert.equal(p.code, 0, show(p));
    assert.deepEqual([...p.violations], [["read-only-root", "advisory"]], show(p));
  });
});
