/** Chat webhook receivers for the watcher's tests: what an incoming webhook of Slack or Mattermost would get. */
import { spawn } from "node:child_process";
import * as path from "node:path";
import type { Alert } from "../../src/watch/health";

export interface NamespaceReceiver {
  /** the webhook URL, inside the namespace */
  url: string;
  /** every alert accepted so far, in order */
  alerts(): Alert[];
  stop(): void;
}

/** A receiver inside network namespace `namespace` (test/support/alertReceiverProcess.ts). */
export async function startReceiverIn(namespace: string): Promise<NamespaceReceiver> {
  const child = spawn("ip", ["netns", "exec", namespace, process.execPath, "--import", "tsx", path.join(__dirname, "alertReceiverProcess.ts")],
    { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => { out += c.toString(); });
  child.stderr.on("data", (c: Buffer) => { err += c.toString(); });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /^listening (\d+)$/m.exec(out);
      if (m) { clearInterval(timer); resolve(Number(m[1])); }
    }, 50);
    child.once("exit", (code) => { clearInterval(timer); reject(new Error(`the alert receiver in ${namespace} exited (${code}): ${err}`)); });
  });
  return {
    url: `http://127.0.0.1:${port}/hooks/secret-token`,
    alerts: () => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Alert),
    stop: () => { child.kill("SIGTERM"); },
  };
}
