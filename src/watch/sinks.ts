/**
 * The watcher's two sinks (deliver.ts): a chat incoming webhook (Slack, Mattermost, Discord) and
 * e-mail over SMTP. Each send resolves only once the other side took the alert, and rejects otherwise.
 *
 *  - webhook: one POST of alertPayload as JSON; a 2xx is taken, anything else (redirects too) is not.
 *    A chat webhook URL is a secret (Slack's path is its token), so no error, log line or store entry
 *    names more of it than `webhook <scheme>://<host>:<port>`.
 *  - email: nodemailer, one connection per send (no pool). Never in clear text: STARTTLS is required
 *    (or implicit TLS on port 465), the server's certificate is checked against `ca` when given, else
 *    against the system's CAs. Errors never hold the password. Each mail carries the alert id in
 *    `X-Hardened-Fleet-Alert`, so a receiver can drop the duplicate sent after a crash (deliver.ts).
 */
import * as http from "node:http";
import * as https from "node:https";
import { createTransport } from "nodemailer";
import { alertMail, alertPayload, lookFurtherCommand } from "./alertText";
import type { Sink } from "./deliver";
import type { Alert } from "./health";

export const WEBHOOK_SETTING = "hardened-fleet:alertWebhookUrl";
export const ALERT_ID_HEADER = "X-Hardened-Fleet-Alert";
const WEBHOOK_TIMEOUT_MS = 10_000;
const MAIL_TIMEOUT_MS = 30_000;
/** of a refused webhook's answer: enough to read the error, never more */
const MAX_BODY_KEPT = 64 * 1024;

const WEBHOOK_FIX = `set it with 'pulumi config set --secret ${WEBHOOK_SETTING} <the incoming webhook's https:// URL> -s <environment>'`;

function defaultPort(u: URL): string {
  return u.port || (u.protocol === "https:" ? "443" : "80");
}

/** `webhook https://hooks.slack.com:443`: all of the URL an error may show. */
export function describeWebhookUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "webhook (not a URL)";
  }
  return `webhook ${u.protocol}//${u.hostname}:${defaultPort(u)}`;
}

/** The webhook URL, checked: http: or https:, a host, no user or password in it. Errors never hold the URL. */
export function parseWebhookUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${WEBHOOK_SETTING} is not a URL: ${WEBHOOK_FIX}`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new Error(`${WEBHOOK_SETTING} must be an https:// (or http://) URL, not ${u.protocol}: ${WEBHOOK_FIX}`);
  }
  if (!u.hostname) throw new Error(`${WEBHOOK_SETTING} has no host: ${WEBHOOK_FIX}`);
  if (u.username || u.password) {
    throw new Error(`${WEBHOOK_SETTING} must not hold a user name or password (user:password@): ${WEBHOOK_FIX}`);
  }
  return u;
}

/** One line of at most `max` characters, the URL's path and query cut out (a body or an error may echo them). */
function redacted(text: string, u: URL, max: number): string {
  let out = text.replace(/[\u0000-\u001f\u007f\s]+/g, " ").trim();
  for (const secret of [`${u.pathname}${u.search}`, u.pathname, u.search.slice(1)]) {
    if (secret.length > 1) out = out.split(secret).join("…");
  }
  return out.length > max ? `${out.slice(0, max - 1)}…` : out;
}

export function webhookSink(opts: { url: string; timeoutMs?: number; ca?: string }): Sink {
  const u = parseWebhookUrl(opts.url);
  const who = describeWebhookUrl(opts.url);
  const timeoutMs = opts.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  const client = u.protocol === "https:" ? https : http;
  return {
    name: "webhook",
    send(alert: Alert): Promise<void> {
      const body = JSON.stringify(alertPayload(alert, { lookFurther: lookFurtherCommand(alert) }));
      return new Promise<void>((resolve, reject) => {
        let settled = false;
        const finish = (err?: Error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        };
        const req = client.request(u, {
          method: "POST",
          agent: false,
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), "user-agent": "hardened-fleet" },
          ...(opts.ca && u.protocol === "https:" ? { ca: opts.ca } : {}),
        }, (res) => {
          const status = res.statusCode ?? 0;
          const chunks: Buffer[] = [];
          let kept = 0;
          res.on("data", (c: Buffer) => {
            if (kept < MAX_BODY_KEPT) chunks.push(c);
            kept += c.length;
          });
          res.on("error", () => finish(new Error(`${who}: the answer (${status}) broke off`)));
          res.on("end", () => {
            if (status >= 200 && status < 300) return finish();
            const excerpt = redacted(Buffer.concat(chunks).toString("utf8"), u, 200);
            finish(new Error(`${who} answered ${status}${excerpt ? `: ${excerpt}` : ""}`));
          });
        });
        // a deadline for the whole exchange, not only for a silent socket
        const timer = setTimeout(() => {
          finish(new Error(`${who}: no answer within ${timeoutMs / 1000}s`));
          req.destroy();
        }, timeoutMs);
        req.on("error", (err) => finish(new Error(`${who}: ${redacted(err.message, u, 300)}`)));
        req.end(body);
      });
    },
  };
}

export interface MailSinkOptions {
  host: string;
  port: number;
  from: string;
  to: string[];
  username?: string;
  password?: string;
  /** PEM of the CA the server's certificate must chain to (else the system's CAs) */
  ca?: string;
  timeoutMs?: number;
}

/** What is wrong with an e-mail setting, each naming its path under `watch.email` and the fix; [] when nothing is. */
export function mailConfigProblems(cfg: Partial<MailSinkOptions>): string[] {
  const problems: string[] = [];
  const address = /^[^\s@<>,;"]+@[^\s@<>,;"]+$/;
  if (!cfg.host || typeof cfg.host !== "string" || /\s/.test(cfg.host)) {
    problems.push("watch.email.host must be the SMTP server's host name (e.g. smtp.example.com)");
  }
  if (!Number.isInteger(cfg.port) || cfg.port! < 1 || cfg.port! > 65535) {
    problems.push(`watch.email.port must be a port number from 1 to 65535 (587 for STARTTLS, 465 for implicit TLS), not ${cfg.port}`);
  }
  if (!cfg.from || !address.test(cfg.from)) {
    problems.push("watch.email.from must be one address like alerts@example.com");
  }
  if (!Array.isArray(cfg.to) || cfg.to.length === 0) {
    problems.push("watch.email.to must list at least one address, e.g. [oncall@example.com]");
  } else {
    cfg.to.forEach((to, i) => {
      if (typeof to !== "string" || !address.test(to)) problems.push(`watch.email.to[${i}] must be one address like oncall@example.com`);
    });
  }
  if (cfg.password !== undefined && !cfg.username) {
    problems.push("watch.email.username must be set when a password is: the account the password belongs to");
  }
  if (cfg.username && !cfg.password) {
    problems.push("watch.email.username is set but there is no password: set the password too, or remove the username to send without logging in");
  }
  if (cfg.ca !== undefined && !cfg.ca.includes("-----BEGIN CERTIFICATE-----")) {
    problems.push("watch.email.ca must be a PEM certificate (-----BEGIN CERTIFICATE-----), or be left out to trust the system's CAs");
  }
  if (cfg.timeoutMs !== undefined && (!Number.isInteger(cfg.timeoutMs) || cfg.timeoutMs < 1000)) {
    problems.push("watch.email.timeoutMs must be a whole number of milliseconds, at least 1000");
  }
  return problems;
}

export function validateMailConfig(cfg: Partial<MailSinkOptions>): MailSinkOptions {
  const problems = mailConfigProblems(cfg);
  if (problems.length > 0) throw new Error(`alert e-mail settings:\n  ${problems.join("\n  ")}`);
  return cfg as MailSinkOptions;
}

/** The text with the password, and the base64 forms AUTH PLAIN and LOGIN send it in, cut out. */
function withoutPassword(text: string, username: string | undefined, password: string | undefined): string {
  if (!password) return text;
  const forms = [
    password,
    Buffer.from(password).toString("base64"),
    Buffer.from(`\u0000${username ?? ""}\u0000${password}`).toString("base64"),
    Buffer.from(`${username ?? ""}\u0000${username ?? ""}\u0000${password}`).toString("base64"),
  ];
  for (const form of forms) text = text.split(form).join("***");
  return text;
}

export function mailSink(opts: MailSinkOptions): Sink {
  const cfg = validateMailConfig(opts);
  const timeoutMs = cfg.timeoutMs ?? MAIL_TIMEOUT_MS;
  const implicitTls = cfg.port === 465;
  const who = `email via ${cfg.host}:${cfg.port}`;
  const transport = createTransport({
    host: cfg.host,
    port: cfg.port,
    secure: implicitTls,
    requireTLS: !implicitTls,
    pool: false,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    tls: { rejectUnauthorized: true, minVersion: "TLSv1.2", ...(cfg.ca ? { ca: cfg.ca } : {}) },
    ...(cfg.username ? { auth: { user: cfg.username, pass: cfg.password ?? "" } } : {}),
  });
  return {
    name: "email",
    async send(alert: Alert): Promise<void> {
      const mail = alertMail(alert);
      try {
        await transport.sendMail({
          from: cfg.from,
          to: cfg.to,
          subject: mail.subject,
          text: mail.text,
          headers: { [ALERT_ID_HEADER]: alert.id },
        });
      } catch (err) {
        const message = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ").trim();
        throw new Error(withoutPassword(`${who}: ${message}`, cfg.username, cfg.password));
      }
    },
  };
}
