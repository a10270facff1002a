/**
 * The dynamic providers' shared runtime (components/providerRuntime.ts), offline: the providers are
 * serialized as Pulumi serializes them (on mocks), loaded back from that text, and run in a throwaway
 * project whose compiled modules are stand-ins that record what they are asked; so the test sees each
 * provider find the project's modules at run time, pass its own engine address (never through the
 * process environment), run commands through the one exec helper, and report failed checks with the
 * one formatter. Plus: the connection helper's options per address, and the modules' exports that the
 * providers of existing stacks still call.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import Module from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { recorded, installMocks, resetRecorded } from "../support/mocks";
import { AUDIT_MODULE, ContainerGate } from "../../components/containerGate";
import { EdgeNetworks, EdgeRoute } from "../../components/edgeLinks";
import { CLIENT_MODULE, EXEC_MODULE, projectModule, providerEngine, runIn } from "../../components/providerRuntime";
import { SECRET_FILE_MODULE, SecretFile } from "../../components/secretFile";
import { SWARM_DEPLOY_MODULE } from "../../components/swarmService";
import { failedChecks } from "../../src/audit/audit";
import { dockerodeOptions, engineAt } from "../../src/engine/client";

const ROOT = path.resolve(__dirname, "../..");

/** What the stand-in modules of the throwaway project do: set per test, read through globalThis. */
interface StandIns {
  hosts: (string | undefined)[];
  engine: any;
  execs: string[][];
  execResult: ExecResult | ((cmd: string[]) => ExecResult);
  audit: any;
  removed: string[];
}
type ExecResult = { exitCode: number; stdout: string; stderr: string; output: string };
const g = globalThis as unknown as { __hfStandIns: StandIns };

/** A project directory (Pulumi.yaml, dist/...) whose compiled modules are stand-ins or, with `real`, the sources. */
function throwawayProject(real = false): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-provider-"));
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), "name: hardened-fleet\n");
  const write = (relative: string, text: string) => {
    const file = path.join(dir, "dist", relative);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  };
  const source = (relative: string) => `module.exports = require(${JSON.stringify(path.join(ROOT, relative.replace(/\.js$/, ".ts")))});\n`;
  if (real) {
    for (const m of [CLIENT_MODULE, EXEC_MODULE]) write(m, source(m));
    return dir;
  }
  write(CLIENT_MODULE, "module.exports = { engineAt(host) { globalThis.__hfStandIns.hosts.push(host); return globalThis.__hfStandIns.engine; } };\n");
  write(EXEC_MODULE, "module.exports = { async execIn(container, cmd) { const s = globalThis.__hfStandIns; s.execs.push(cmd); " +
    "return typeof s.execResult === 'function' ? s.execResult(cmd) : s.execResult; } };\n");
  // the real formatter beside a stand-in audit
  write(AUDIT_MODULE, `module.exports = { auditContainer: async () => globalThis.__hfStandIns.audit, failedChecks: require(${JSON.stringify(path.join(ROOT, "src/audit/audit.ts"))}).failedChecks };\n`);
  write(SECRET_FILE_MODULE, "module.exports = { async writeSecretFile() {}, async removeSecretFile(engine, volume) { globalThis.__hfStandIns.removed.push(volume); } };\n");
  return dir;
}

/** The provider a dynamic resource carries in its state, loaded back from its text as Pulumi's provider process does. */
function loadProvider(text: string, cwd: string): pulumi.dynamic.ResourceProvider {
  const m = new Module(path.join(cwd, "provider.js"));
  m.filename = path.join(cwd, "provider.js");
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(ROOT);
  (m as unknown as { _compile(code: string, file: string): void })._compile(text, m.filename);
  return (m.exports as { handler(): pulumi.dynamic.ResourceProvider }).handler();
}

/** Registers `make()` on mocks and returns the serialized provider of the resource of `type`. */
async function serializedProvider(type: string, make: () => void): Promise<string> {
  resetRecorded();
  make();
  for (let i = 0; i < 200; i++) {
    const found = recorded.find((r) => r.type === type);
    if (found) return found.inputs.__provider as string;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no ${type} registered`);
}

const fresh = (): StandIns => ({
  hosts: [], engine: undefined, execs: [], removed: [], audit: undefined,
  execResult: { exitCode: 0, stdout: "", stderr: "", output: "" },
});

describe("dynamic providers, serialized and run against a throwaway project", () => {
  const cwd = process.cwd();
  const dockerHost = process.env.DOCKER_HOST;
  let project: string;
  const providers: Record<string, string> = {};

  before(async () => {
    installMocks();
    providers.gate = await serializedProvider("pulumi-nodejs:dynamic/hardened-fleet:PidsLimit", () =>
      new ContainerGate("g", { containerId: "c1", pidsLimit: 64, healthTimeoutSeconds: 5, dockerHost: "tcp://gate-engine:2375" }));
    providers.secret = await serializedProvider("pulumi-nodejs:dynamic/hardened-fleet:SecretFile", () =>
      new SecretFile("s", { file: { volume: "hf-staging-acme-secrets", dir: "/run/secrets", fileName: "app_secret_key", envVar: "APP_SECRET_KEY_FILE" },
        content: "k", image: "img", labels: {}, dockerHost: "" }));
    providers.route = await serializedProvider("pulumi-nodejs:dynamic/hardened-fleet:EdgeRoute", () =>
      new EdgeRoute("r", { proxy: "hf-staging-edge", network: "hf-staging-acme-edge", routesDir: "/routes", fileName: "acme.caddy",
        fileText: "x", reload: ["caddy", "reload"], upstream: "c1", dockerHost: "unix:///run/edge.sock" }));
    providers.networks = await serializedProvider("pulumi-nodejs:dynamic/hardened-fleet:EdgeNetworks", () =>
      new EdgeNetworks("n", { containerId: "p1", routesDir: "/routes", networkPrefix: "hf-staging-", networkSuffix: "-edge", dockerHost: "ssh://ops@edge" }));
    project = throwawayProject();
    process.chdir(path.join(project, "dist"));
  });

  after(() => {
    process.chdir(cwd);
    fs.rmSync(project, { recursive: true, force: true });
  });

  it("no provider's text writes DOCKER_HOST or carries a path of this checkout", () => {
    for (const [name, text] of Object.entries(providers)) {
      assert.doesNotMatch(text, /process\.env\.DOCKER_HOST\s*=[^=]/, name);
      assert.ok(!text.includes(ROOT), `${name} carries ${ROOT}`);
    }
  });

  it("ContainerGate: the engine of its own dockerHost, for the limit, the health wait and the audit; failed checks in one message", async () => {
    g.__hfStandIns = fresh();
    const stopped: string[] = [];
    const container = {
      update: async () => {},
      inspect: async () => ({ Name: "/hf-staging-acme-1", HostConfig: { PidsLimit: 64 }, State: { Running: true, Health: { Status: "healthy", Log: [] } } }),
      start: async () => {},
      stop: async () => { stopped.push("c1"); },
    };
    g.__hfStandIns.engine = { getContainer: (id: string) => { assert.equal(id, "c1"); return container; } };
    g.__hfStandIns.audit = { ok: false, container: "hf-staging-acme-1", checks: [
      { id: "image-user", ok: true, detail: "1000:1000" },
      { id: "seccomp", ok: false, detail: "seccomp=unconfined: the container may make every system call" },
      { id: "limits", ok: false, detail: "no PIDs limit" },
    ] };
    const gate = loadProvider(providers.gate!, process.cwd());
    const inputs = { containerId: "c1", pidsLimit: 64, healthTimeoutSeconds: 5, dockerHost: "tcp://gate-engine:2375" };
    await assert.rejects(gate.create!(inputs), (err: Error) => {
      assert.equal(err.message, "container hf-staging-acme-1 failed the hardening audit, so it gets no traffic: " +
        "seccomp: seccomp=unconfined: the container may make every system call; limits: no PIDs limit");
      return true;
    });
    assert.deepEqual(stopped, ["c1"], "the failed container is stopped");
    assert.ok(g.__hfStandIns.hosts.length >= 3);
    assert.ok(g.__hfStandIns.hosts.every((h) => h === "tcp://gate-engine:2375"), JSON.stringify(g.__hfStandIns.hosts));
    // passing the audit, the same provider creates it
    g.__hfStandIns.audit = { ok: true, container: "hf-staging-acme-1", checks: [] };
    assert.deepEqual(await gate.create!(inputs), { id: "c1/pids", outs: inputs });
    // read: the live limit
    const read = await gate.read!("c1/pids", { ...inputs, dockerHost: "" });
    assert.equal(read.props!.pidsLimit, 64);
    assert.equal(g.__hfStandIns.hosts.at(-1), undefined, "an empty dockerHost is the default engine");
    assert.equal(process.env.DOCKER_HOST, dockerHost);
  });

  it("SecretFile: delete removes the volume on the resource's engine", async () => {
    g.__hfStandIns = fresh();
    g.__hfStandIns.engine = { tag: "engine" };
    const secret = loadProvider(providers.secret!, process.cwd());
    await secret.delete!("v/f", { file: { volume: "hf-staging-acme-secrets" }, dockerHost: "unix:///run/other.sock" });
    assert.deepEqual(g.__hfStandIns.removed, ["hf-staging-acme-secrets"]);
    assert.deepEqual(g.__hfStandIns.hosts, ["unix:///run/other.sock"]);
    assert.equal(process.env.DOCKER_HOST, dockerHost);
  });

  it("EdgeRoute: writes, moves and reloads through the exec helper on the proxy's engine; a refused reload restores the previous route", async () => {
    g.__hfStandIns = fresh();
    const archives: string[] = [];
    const connected: string[] = [];
    const proxy = {
      inspect: async () => ({ Id: "p1", State: { Running: true, Status: "running" }, NetworkSettings: { Networks: {} } }),
      putArchive: async (_tar: Buffer, opts: { path: string }) => { archives.push(opts.path); },
    };
    g.__hfStandIns.engine = {
      getContainer: () => proxy,
      getNetwork: (name: string) => ({ connect: async () => { connected.push(name); }, disconnect: async () => {} }),
    };
    const route = loadProvider(providers.route!, process.cwd());
    const state = { proxy: "hf-staging-edge", network: "hf-staging-acme-edge", routesDir: "/routes", fileName: "acme.caddy",
      fileText: "x", reload: ["caddy", "reload"], upstream: "c1", dockerHost: "unix:///run/edge.sock" };
    await route.create!(state);
    assert.deepEqual(connected, ["hf-staging-acme-edge"]);
    assert.deepEqual(archives, ["/routes"]);
    assert.deepEqual(g.__hfStandIns.execs, [["mv", "-f", "/routes/.acme.caddy.tmp", "/routes/acme.caddy"], ["caddy", "reload"]]);
    assert.ok(g.__hfStandIns.hosts.every((h) => h === "unix:///run/edge.sock"));

    // the reload fails: what the command said (stdout and stderr as they came) is in the error
    g.__hfStandIns.execs = [];
    const ok = g.__hfStandIns.execResult as ExecResult;
    g.__hfStandIns.execResult = (cmd) => (cmd[0] === "caddy" && g.__hfStandIns.execs.filter((c) => c[0] === "caddy").length === 1
      ? { exitCode: 1, stdout: "", stderr: "Error: adapting config\n", output: "  Error: adapting config\n" } : ok);
    await assert.rejects(route.create!(state), /the edge proxy hf-staging-edge refused the route of acme\.caddy \(the previous one stays\): Error: adapting config$/);
    assert.deepEqual(g.__hfStandIns.execs, [
      ["mv", "-f", "/routes/.acme.caddy.tmp", "/routes/acme.caddy"], ["caddy", "reload"],
      // no previous route: it is removed again, and the proxy reloaded without it
      ["rm", "-f", "/routes/acme.caddy"], ["caddy", "reload"],
    ]);
    assert.equal(process.env.DOCKER_HOST, dockerHost);
  });

  it("EdgeNetworks: lists the routes through the exec helper and joins those customers' networks", async () => {
    g.__hfStandIns = fresh();
    const connected: string[] = [];
    g.__hfStandIns.engine = {
      getContainer: () => ({ inspect: async () => ({ Id: "p1", NetworkSettings: { Networks: {} } }) }),
      getNetwork: (name: string) => ({ connect: async () => { connected.push(name); } }),
    };
    g.__hfStandIns.execResult = { exitCode: 0, stdout: "acme.caddy\nbeta.caddy\nREADME\n", stderr: "", output: "acme.caddy\nbeta.caddy\nREADME\n" };
    const networks = loadProvider(providers.networks!, process.cwd());
    const created = await networks.create!({ containerId: "p1", routesDir: "/routes", networkPrefix: "hf-staging-", networkSuffix: "-edge", dockerHost: "ssh://ops@edge" });
    assert.deepEqual(created.outs.connected, ["hf-staging-acme-edge", "hf-staging-beta-edge"]);
    assert.deepEqual(g.__hfStandIns.execs, [["ls", "-1", "/routes"]]);
    assert.deepEqual(g.__hfStandIns.hosts, ["ssh://ops@edge"]);
  });
});

describe("the shared helpers, on the project's real connection and exec modules", () => {
  it("providerEngine: one client per address, none changing another's or the process environment", () => {
    const project = throwawayProject(true);
    const cwd = process.cwd();
    const before = process.env.DOCKER_HOST;
    try {
      process.chdir(path.join(project, "dist"));
      const a = providerEngine("unix:///run/a/docker.sock") as any;
      const b = providerEngine("tcp://10.0.0.2:2375") as any;
      const c = providerEngine("unix:///run/c/docker.sock") as any;
      assert.equal(a.modem.socketPath, "/run/a/docker.sock");
      assert.equal(b.modem.host, "10.0.0.2");
      assert.equal(String(b.modem.port), "2375");
      assert.equal(c.modem.socketPath, "/run/c/docker.sock");
      assert.equal(a.modem.socketPath, "/run/a/docker.sock", "a later client does not move an earlier one");
      assert.equal(process.env.DOCKER_HOST, before);
    } finally {
      process.chdir(cwd);
      fs.rmSync(project, { recursive: true, force: true });
    }
  });

  it("runIn: the exit code and stdout and stderr as they came, trimmed, through execIn", async () => {
    const project = throwawayProject(true);
    const cwd = process.cwd();
    const { PassThrough } = await import("node:stream");
    const container = {
      exec: async (opts: { Cmd: string[] }) => ({
        start: async () => new PassThrough(),
        inspect: async () => ({ ExitCode: opts.Cmd[0] === "false" ? 1 : 0 }),
      }),
      modem: {
        demuxStream: (stream: NodeJS.ReadWriteStream, out: NodeJS.WritableStream, err: NodeJS.WritableStream) => {
          out.write("first\n");
          err.write("second\n");
          out.write("third\n");
          (stream as unknown as NodeJS.ReadableStream).resume();
          setImmediate(() => stream.end());
        },
      },
    } as any;
    try {
      process.chdir(project);
      assert.deepEqual(await runIn(container, ["true"]), { code: 0, output: "first\nsecond\nthird" });
      assert.deepEqual(await runIn(container, ["false"]), { code: 1, output: "first\nsecond\nthird" });
    } finally {
      process.chdir(cwd);
      fs.rmSync(project, { recursive: true, force: true });
    }
  });

  it("projectModule: finds dist/<module> from the program's directory or above, and stops at the project's root", () => {
    const project = throwawayProject(true);
    const cwd = process.cwd();
    try {
      process.chdir(path.join(project, "dist"));
      assert.equal(fs.realpathSync(projectModule(CLIENT_MODULE)), fs.realpathSync(path.join(project, "dist", CLIENT_MODULE)));
      process.chdir(project);
      assert.equal(fs.realpathSync(projectModule(CLIENT_MODULE)), fs.realpathSync(path.join(project, "dist", CLIENT_MODULE)));
      assert.throws(() => projectModule("src/nothing.js"), /src\/nothing\.js is not compiled in the project of .*: run 'npm run build'/);
    } finally {
      process.chdir(cwd);
      fs.rmSync(project, { recursive: true, force: true });
    }
  });
});

describe("the connection helper (src/engine/client.ts)", () => {
  it("gives dockerode options for unix, tcp (TLS as the docker CLI) and ssh addresses; nothing for the default", () => {
    assert.deepEqual(dockerodeOptions(undefined), {});
    assert.deepEqual(dockerodeOptions("unix:///var/run/docker.sock"), { socketPath: "/var/run/docker.sock", host: undefined });
    assert.deepEqual(dockerodeOptions("tcp://node1:2375", {}), { protocol: "http", host: "node1", port: "2375" });
    assert.deepEqual(dockerodeOptions("tcp://node1", { DOCKER_TLS_VERIFY: "1" }), { protocol: "https", host: "node1", port: "2376" });
    assert.deepEqual(dockerodeOptions("ssh://ops@node1", { SSH_AUTH_SOCK: "/agent" }),
      { protocol: "ssh", host: "node1", port: "22", username: "ops", sshOptions: { agent: "/agent" } });
    assert.throws(() => dockerodeOptions("npipe:////./pipe/docker"), /docker host 'npipe:\/\/\/\/\.\/pipe\/docker': use unix:\/\/, tcp:\/\/ or ssh:\/\//);
  });

  it("a unix socket wins over a tcp DOCKER_HOST in the environment", () => {
    const saved = process.env.DOCKER_HOST;
    try {
      process.env.DOCKER_HOST = "tcp://elsewhere:2375";
      const engine = engineAt("unix:///run/mine.sock") as any;
      assert.equal(engine.modem.socketPath, "/run/mine.sock");
      assert.equal(engine.modem.host, undefined);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});

describe("what the providers of existing stacks call in the compiled modules", () => {
  // a stack runs the provider it was deployed with for delete and refresh: these exports must stay
  const contract: Record<string, string[]> = {
    [AUDIT_MODULE]: ["auditContainer", "failedChecks"],
    [SECRET_FILE_MODULE]: ["writeSecretFile", "removeSecretFile"],
    [SWARM_DEPLOY_MODULE]: ["deployService", "serviceDrift", "engineAt", "findService", "liveView", "runningTask", "removeService"],
    [CLIENT_MODULE]: ["engineAt", "dockerodeOptions"],
    [EXEC_MODULE]: ["execIn"],
  };
  for (const [module, names] of Object.entries(contract)) {
    it(`${module} exports ${names.join(", ")}`, async () => {
      const loaded = await import(path.join(ROOT, module.replace(/\.js$/, ".ts")));
      for (const name of names) assert.equal(typeof loaded[name], "function", `${module} ${name}`);
    });
  }

  it("failedChecks: '<id>: <detail>' of each failed check, in order", () => {
    assert.deepEqual(failedChecks([
      { id: "a", ok: false, detail: "one" }, { id: "b", ok: true, detail: "fine" }, { id: "c", ok: false, detail: "two" },
    ]), ["a: one", "c: two"]);
    assert.deepEqual(failedChecks([]), []);
  });
});
