/** The demo app (examples/customer-app/app.py), its WSGI handler called in the machine's python3 on a scratch data dir. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

const appDir = path.resolve(__dirname, "../../examples/customer-app");

/** Lists the data dir 300 times while 4 threads answer /healthz (each writes and removes a probe file), as the
 *  healthcheck, the edge and a watcher do at once in a real container; prints the statuses the listing gave. */
const script = `
import sys, threading, wsgiref.util
sys.path.insert(0, ${JSON.stringify(appDir)})
import app
def call(path):
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": ""}
    wsgiref.util.setup_testing_defaults(env)
    out = {}
    app.application(env, lambda status, headers: out.setdefault("status", status))
    return out["status"]
stop = threading.Event()
def probe():
    while not stop.is_set():
        call("/healthz")
threads = [threading.Thread(target=probe) for _ in range(4)]
for t in threads: t.start()
statuses = {}
for _ in range(300):
    s = call("/files")
    statuses[s] = statuses.get(s, 0) + 1
stop.set()
for t in threads: t.join()
print(statuses)
`;

describe("the demo customer app", () => {
  it("GET /files answers 200 every time while health probes create and remove their files in the same volume", () => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), "hf-app-"));
    try {
      for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(data, `file-${i}`), "x");
      const out = execFileSync("python3", ["-c", script], {
        env: { ...process.env, DATA_DIR: data, APP_SECRET_KEY: "k".repeat(32) }, encoding: "utf8", timeout: 120_000,
      });
      assert.equal(out.trim(), "{'200 OK': 300}");
    } finally {
      fs.rmSync(data, { recursive: true, force: true });
    }
  });
});
