/**
 * One environment and one customer deployed with the fleet CLI (separate processes) in a project copy,
 * on the real engines:
 *
 *  - the app's secret key is a file (1000:1000, 0400) on a read-only volume of its own, in no
 *    environment: neither `docker inspect` nor /proc/<pid>/environ shows it, and a host process of
 *    UID 1000 (the app's UID) cannot read the file; the app answers with what it signed with the key;
 *  - the state names no directory of the checkout: the whole copy (with its file backend) moved to
 *    another path, `fleet up` changes nothing, `pulumi refresh`, a plan change and `fleet deprovision`
 *    work from there, and the key and the data written before are still there.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { gunzipSync } from "node:zlib";
import { after, before, describe, it } from "node:test";
import { findToolchain } from "../../src/pulumi/toolchain";
import { customerNames } from "../../src/hardening/names";
import { fleet, killLeftovers, orphanedPlugins, show, toolchainEnv } from "../support/cli";
import { customerContainer, engine, python, removeCustomers } from "../support/engine";
import { request } from "../support/http";
import { copyProject, customerUrlIn, dropEncryptionSalt, editEnvironment, useEdge } from "../support/projectCopy";

const PASSPHRASE = "relocate-test-passphrase";
const ID = "rl-acme";
const NAMES = customerNames("staging", ID);
type Info = { version: string; signed: string };
type Files = { files: { path: string }[] };

/** Every current stack checkpoint of a file backend, as text. */
function stackStates(root: string): Record<string, string> {
  const dir = path.join(root, ".fleet", "state", ".pulumi", "stacks");
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.json(\.gz)?$/.test(e.name)) out[path.relative(dir, p)] = e.name.endsWith(".gz") ? gunzipSync(fs.readFileSync(p)).toString() : fs.readFileSync(p, "utf8");
    }
  };
  walk(dir);
  return out;
}

/** Runs `cmd` on the host as UID/GID 1000 with no supplementary groups: another host process of the app's UID. */
function asUid1000(cmd: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync("setpriv", ["--reuid", "1000", "--regid", "1000", "--clear-groups", ...cmd], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the app's key is a file, and a moved checkout carries on (real engines, CLI processes)", { timeout: 20 * 60_000 }, () => {
  const first = copyProject();
  const moved = `${first.root}-moved`;
  let root = first.root;
  const env = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
  const pluginsBefore = orphanedPlugins();
  let url = "";
  let key = "";
  let signed = "";
  let containerId = "";
  const ok = async (args: string[]) => {
    const r = await fleet(root, args, { env, timeoutMs: 600_000 });
    assert.equal(r.code, 0, `fleet ${args.join(" ")} in ${root}: ${show(r)}`);
    return r;
  };

  before(async () => {
    await removeCustomers([["staging", ID]], [["staging", "edge-rl"]]);
    dropEncryptionSalt(root, "staging");
    useEdge(root, "staging", "edge-rl", 19200, 19201);
    // a healthcheck that tolerates a loaded host: what is tested here is not how fast the app starts
    editEnvironment(root, "staging", (e) => { e.deploy.healthTimeoutSeconds = 60; e.app.healthcheck.timeoutSeconds = 10; });
    url = customerUrlIn(root, "staging", ID);
  });

  after(async () => {
    killLeftovers(pluginsBefore);
    await removeCustomers([["staging", ID]], [["staging", "edge-rl"]]);
    for (const dir of [first.root, moved]) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the key is a file of 1000:1000 mode 0400 in the container, in no environment, and no other host process of UID 1000 reads it", async () => {
    await ok(["up", "staging"]);
    await ok(["provision", ID, "--env", "staging", "--plan", "starter"]);
    const info = await customerContainer("staging", ID);
    assert.ok(info, "no container");
    containerId = info.Id;
    const volume = await engine.getVolume(NAMES.secretsVolume).inspect();
    const hostPath = path.join(volume.Mountpoint, "app_secret_key");
    key = fs.readFileSync(hostPath, "utf8");
    assert.match(key, /^[A-Za-z0-9]{48}$/);
    assert.equal(volume.Labels["io.hardened-fleet.role"], "customer-secrets", "the key's volume must not pass for customer data");

    // not in docker inspect, not in the environment of any of its processes (seen from the host)
    assert.deepEqual(info.Config.Env.filter((e) => e.startsWith("APP_SECRET_KEY=") || e.includes(key)), []);
    assert.ok(info.Config.Env.includes("APP_SECRET_KEY_FILE=/run/secrets/app_secret_key"));
    const top = await engine.getContainer(info.Id).top({ ps_args: "-o pid" });
    const pids = (top.Processes as string[][]).map((p) => p[0]!.trim());
    assert.ok(pids.length >= 2, `expected the supervisor and the app: ${JSON.stringify(top)}`);
    for (const pid of pids) assert.ok(!fs.readFileSync(`/proc/${pid}/environ`, "utf8").includes(key), `the key is in the environment of ${pid}`);

    // inside: the file and its directory belong to 1000 alone; PID 1's environment has no key
    const container = engine.getContainer(info.Id);
    // with the app's interpreter: the runtime has no shell, stat or cat
    const stat = await python(container, ["import os",
      "for p in ['/run/secrets', '/run/secrets/app_secret_key']:",
      "    st = os.stat(p)",
      "    print(p, f'{st.st_uid}:{st.st_gid}', format(st.st_mode & 0o7777, 'o'))"]);
    assert.equal(stat.stdout.trim(), "/run/secrets 1000:1000 500\n/run/secrets/app_secret_key 1000:1000 400");
    const environ = await python(container, ["import sys", "sys.stdout.write(open('/proc/1/environ').read())"]);
    assert.equal(environ.exitCode, 0, environ.stderr);
    assert.ok(!environ.stdout.includes("APP_SECRET_KEY=") && !environ.stdout.includes(key));
    const write = await python(container, ["open('/run/secrets/app_secret_key', 'w').write('x')"]);
    assert.notEqual(write.exitCode, 0, "the app must not be able to change its key");

    // a host process of UID 1000: the file is out of its reach, the app's environment (which it can read) has no key
    const cat = asUid1000(["cat", hostPath]);
    assert.notEqual(cat.code, 0, `UID 1000 on the host read the key file: ${cat.stdout}`);
    assert.match(cat.stderr, /Permission denied/);
    const appEnviron = asUid1000(["cat", `/proc/${info.State.Pid}/environ`]);
    assert.equal(appEnviron.code, 0, appEnviron.stderr);
    assert.ok(!appEnviron.stdout.includes(key) && !appEnviron.stdout.includes("APP_SECRET_KEY="));

    // the app started with that key: what it signs with it matches
    const answer = (await request(`${url}/`)).body as Info;
    signed = createHmac("sha256", key).update("hardened-fleet").digest("hex").slice(0, 16);
    assert.equal(answer.signed, signed);
    assert.equal((await request(`${url}/uploads?name=before-move.txt`, "POST", "written before the move")).status, 201);
  });

  it("the state names no directory of the checkout", () => {
    const states = stackStates(root);
    assert.deepEqual(Object.keys(states).sort(), ["hardened-fleet/staging-rl-acme.json", "hardened-fleet/staging.json"]);
    for (const [file, text] of Object.entries(states)) {
      const found = text.split(root).slice(1).map((after) => (root + after).slice(0, 120));
      assert.deepEqual(found, [], `${file} names the checkout's directory`);
      assert.ok(key && !text.includes(key), `${file} holds the key in clear`);
    }
  });

  it("moved elsewhere, up changes nothing; refresh, a plan change and deprovision work; the key and the data are kept", async () => {
    fs.renameSync(first.root, moved);
    root = moved;
    // what a stack deployed before this release holds: the audit module by its absolute path, now gone
    const checkpoint = path.join(root, ".fleet", "state", ".pulumi", "stacks", "hardened-fleet", `staging-${ID}.json`);
    const state = JSON.parse(fs.readFileSync(checkpoint, "utf8"));
    const gates = state.checkpoint.latest.resources.filter((r: { type: string }) => r.type === "pulumi-nodejs:dynamic/hardened-fleet:PidsLimit");
    assert.equal(gates.length, 1);
    for (const r of gates) r.inputs.auditModule = r.outputs.auditModule = path.join(first.root, "dist", "src", "audit", "audit.js");
    fs.writeFileSync(checkpoint, JSON.stringify(state, null, 4));

    assert.match((await ok(["up", "staging"])).stdout, /^staging: same \d+ in /m);
    assert.match((await ok(["up", `staging-${ID}`])).stdout, new RegExp(`^staging-${ID}: same \\d+ in `, "m"));
    assert.equal((await customerContainer("staging", ID))?.Id, containerId, "the container was replaced");

    // plain `pulumi refresh` from the new project root, as an operator would run it
    const tc = findToolchain();
    const refresh = spawnSync(path.join(tc.bin, "pulumi"), ["refresh", "--yes", "--skip-preview", "--non-interactive", "-s", `staging-${ID}`], {
      cwd: root, encoding: "utf8", timeout: 300_000,
      env: {
        ...process.env, ...toolchainEnv(), ...env, PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_BACKEND_URL: `file://${path.join(root, ".fleet", "state")}`,
        PATH: [tc.bin, path.dirname(process.execPath), process.env.PATH ?? ""].join(path.delimiter),
      },
    });
    assert.equal(refresh.status, 0, `pulumi refresh: ${refresh.stdout}\n${refresh.stderr}`);

    await ok(["provision", ID, "--env", "staging", "--plan", "standard"]);
    const info = await customerContainer("staging", ID);
    assert.notEqual(info?.Id, containerId, "a plan change is a new container");
    assert.equal(info?.Config.Labels["io.hardened-fleet.plan"], "standard");
    assert.deepEqual(info?.Config.Env.filter((e) => e.startsWith("APP_SECRET_KEY=")), []);
    assert.equal(((await request(`${url}/`)).body as Info).signed, signed, "the key changed with the plan");
    const files = ((await request(`${url}/files`)).body as Files).files;
    assert.ok(files.some((f) => f.path === "/data/uploads/before-move.txt"), "the data written before the move is gone");

    await ok(["deprovision", ID, "--env", "staging"]);
    assert.equal(await customerContainer("staging", ID), undefined);
    await assert.rejects(engine.getVolume(NAMES.secretsVolume).inspect(), /no such volume/i);
    assert.equal((await engine.getVolume(NAMES.dataVolume).inspect()).Name, NAMES.dataVolume);
    assert.ok(!fs.existsSync(path.join(root, `Pulumi.staging-${ID}.yaml`)));
  });
});
