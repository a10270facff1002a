/**
 * A local SMTP server for tests (smtp-server), on 127.0.0.1 at a free port: STARTTLS with a
 * self-signed certificate for localhost and 127.0.0.1 made by the openssl CLI at start (its PEM is
 * `ca`), optional required login, every message it took recorded. It can refuse messages with 451
 * for a while, and can have no STARTTLS at all (the command disabled, not only hidden: a client that
 * requires TLS sends STARTTLS whether it is advertised or not); the latter also allows clear-text
 * login, so only the client stands between the alert and clear text.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { SMTPServer } from "smtp-server";

export interface ReceivedMail {
  from: string;
  to: string[];
  /** the login the client used, when it logged in */
  user?: string;
  /** the client had upgraded to TLS */
  secure: boolean;
  raw: string;
  subject?: string;
  alertId?: string;
}

export interface TestSmtpServer {
  host: string;
  port: number;
  /** PEM of the self-signed certificate the server presents */
  ca: string;
  received: ReceivedMail[];
  /** answer 451 to each message while this is more than 0, counting it down */
  refuseNext: number;
  close(): Promise<void>;
}

export interface TestSmtpOptions {
  /** login required with these */
  auth?: { user: string; password: string };
  /** no STARTTLS: the command disabled */
  noStartTls?: boolean;
  /** messages answered 451 first */
  refuse?: number;
}

/** A header of the raw message, unfolded. */
function header(raw: string, name: string): string | undefined {
  const head = raw.split(/\r?\n\r?\n/)[0] ?? "";
  const unfolded = head.replace(/\r?\n[ \t]+/g, " ");
  const line = unfolded.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

/** A key and self-signed certificate for localhost and 127.0.0.1 (PEM), made by the openssl CLI. */
export function selfSignedCertificate(): { key: string; cert: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hf-smtp-"));
  try {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "2",
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"),
    ], { stdio: ["ignore", "ignore", "pipe"] });
    return { key: fs.readFileSync(path.join(dir, "key.pem"), "utf8"), cert: fs.readFileSync(path.join(dir, "cert.pem"), "utf8") };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function startSmtpServer(opts: TestSmtpOptions = {}): Promise<TestSmtpServer> {
  const { key, cert } = selfSignedCertificate();
  const received: ReceivedMail[] = [];
  const state = { refuseNext: opts.refuse ?? 0 };
  const server = new SMTPServer({
    key,
    cert,
    logger: false,
    disableReverseLookup: true,
    authOptional: !opts.auth,
    ...(opts.noStartTls ? { disabledCommands: ["STARTTLS"], hideSTARTTLS: true, allowInsecureAuth: true } : {}),
    onAuth(auth, _session, callback) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.password) {
        callback(null, { user: auth.username });
      } else {
        callback(Object.assign(new Error("authentication failed"), { responseCode: 535 }));
      }
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        if (state.refuseNext > 0) {
          state.refuseNext--;
          callback(Object.assign(new Error("try again later"), { responseCode: 451 }));
          return;
        }
        const raw = Buffer.concat(chunks).toString("utf8");
        const mailFrom = session.envelope.mailFrom;
        received.push({
          from: mailFrom ? mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          ...(typeof session.user === "string" ? { user: session.user } : {}),
          secure: session.secure,
          raw,
          subject: header(raw, "Subject"),
          alertId: header(raw, "X-Hardened-Fleet-Alert"),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    host: "127.0.0.1",
    port,
    ca: cert,
    received,
    get refuseNext() { return state.refuseNext; },
    set refuseNext(n: number) { state.refuseNext = n; },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
