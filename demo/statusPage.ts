/**
 * The demo's last step: `fleet watch` and `fleet serve` (with its status page) left running in the
 * background for the staging environment, so the newcomer can look at the fleet in a browser. Their
 * pid files, logs and the status page's sign-in token are in .fleet/demo/; a second demo run stops
 * the ones it started before and starts them again.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";

export interface DemoServices {
  statusUrl: string;
  tokenFile: string;
  dir: string;
}

/** Stops the process of `pidFile` if it is still the demo's fleet `command` of this project (not a reused pid). */
function stopEarlier(pidFile: string, command: string, projectDir: string): void {
  const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  let cmdline = "";
  try { cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" "); } catch { return; }
  let cwd = "";
  try { cwd = fs.readlinkSync(`/proc/${pid}/cwd`); } catch { return; }
  if (!cmdline.includes(`main.js ${command}`) || cwd !== projectDir) return;
  try { process.kill(pid, "SIGTERM"); } catch { /* gone meanwhile */ }
}

function get(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2_000 }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on("error", () => resolve(0));
    req.on("timeout", () => { req.destroy(); resolve(0); });
  });
}

async function waitGone(pidFile: string): Promise<void> {
  const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  for (let i = 0; i < 100; i++) {
    try { process.kill(pid, 0); } catch { return; }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startDemoServices(projectDir: string, listen = process.env.HF_DEMO_STATUS_LISTEN ?? "127.0.0.1:8787"): Promise<DemoServices> {
  const dir = path.join(projectDir, ".fleet", "demo");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tokenFile = path.join(dir, "status-token");
  if (!fs.existsSync(tokenFile)) fs.writeFileSync(tokenFile, `${randomBytes(24).toString("base64url")}\n`, { mode: 0o600 });
  const token = fs.readFileSync(tokenFile, "utf8").trim();
  const main = path.join(__dirname, "..", "src", "cli", "main.js");
  const services = [
    { name: "watch", args: ["watch", "--env", "staging", "--listen", "127.0.0.1:0"], env: {} },
    // the demo receives no Stripe event: its webhook secret is a throwaway one
    { name: "serve", args: ["serve", "--env", "staging", "--listen", listen],
      env: { STRIPE_WEBHOOK_SECRET: `whsec_demo${randomBytes(16).toString("hex")}`, FLEET_STATUS_TOKEN: token } },
  ];
  for (const s of services) {
    const pidFile = path.join(dir, `${s.name}.pid`);
    if (fs.existsSync(pidFile)) {
      stopEarlier(pidFile, s.name, projectDir);
      await waitGone(pidFile);
    }
  }
  for (const s of services) {
    const log = fs.openSync(path.join(dir, `${s.name}.log`), "a", 0o600);
    const child = spawn(process.execPath, [main, ...s.args], {
      cwd: projectDir, detached: true, stdio: ["ignore", log, log], env: { ...process.env, ...s.env },
    });
    fs.closeSync(log);
    fs.writeFileSync(path.join(dir, `${s.name}.pid`), `${child.pid}\n`);
    child.unref();
  }
  const statusUrl = `http://${listen}/status`;
  for (let i = 0; i < 150; i++) {
    if (await get(`http://${listen}/healthz`) === 200) return { statusUrl, tokenFile, dir };
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`fleet serve did not answer on ${listen} within 30 s: see ${path.join(dir, "serve.log")} ` +
    "(another program on that address? set HF_DEMO_STATUS_LISTEN=127.0.0.1:<port>)");
}
