/**
 * The routes of the status page in `fleet serve` (node:http; src/webhooks/server.ts hands them every
 * request under /status). The data and the logs come from injected functions, so the routes are
 * tested without an engine.
 *
 *  GET  /status          the page (a session), else 303 to the sign-in form
 *  GET  /status/login    the sign-in form (its CSRF nonce in a short cookie)
 *  POST /status/login    token and CSRF field: the session cookie and 303 to /status; 401 for a
 *                        wrong token, 403 for a missing or wrong CSRF field, 429 after too many failures
 *  POST /status/logout   (a session and its CSRF field) ends the session; 303 to the sign-in form
 *  GET  /status/logs     ?environment=&customer=: that customer's last log lines (a session)
 *
 * The token (FLEET_STATUS_TOKEN) is only ever read from a POST body, never from a URL. Without a valid
 * session no route reads any data. Every answer is HTML under a CSP that allows no script, only the
 * pages' one inline style, no frames and forms to this origin alone.
 */
import type * as http from "node:http";
import { parseCustomerTarget } from "../config/targets";
import { FORM_FIELDS, loginPage, logsPage, page, STATUS_PATHS, STYLE_SOURCE, statusPage, type StatusData } from "./pages";
import { html } from "./html";
import {
  checkCsrf, checkToken, clearSessionCookie, createSessionStore, csrfToken, LOGIN_NONCE_COOKIE, loginNonceCookie, parseCookies,
  randomId, SESSION_COOKIE, SESSION_PATH, type SessionStore,
} from "./session";

/** A customer's last `lines` log lines, oldest first. Throws NotFound for an environment or customer that is not there. */
export type LogReader = (environment: string, customer: string, lines: number) => Promise<string[]>;

/** What the status page shows (all but the form's CSRF token, which the route adds). */
export type StatusSnapshot = Omit<StatusData, "csrfToken">;

/** An environment or customer the logs were asked for that does not exist: 404, with this message. */
export class NotFound extends Error {}

export interface StatusRoutesOptions {
  /** FLEET_STATUS_TOKEN; undefined: every status route answers 404 (the page is disabled) */
  token: string | undefined;
  /** the fleet as the page shows it, read at each request */
  data: () => Promise<StatusSnapshot>;
  logs: LogReader;
  /** log lines on a customer's logs page */
  logLines?: number;
  /** default: 8 hours */
  sessionSeconds?: number;
  /** the Secure flag of the cookies (default true: the page is for HTTPS, or localhost) */
  secureCookies?: boolean;
  /** failed sign-ins in a minute after which the form answers 429 until the minute is over */
  maxFailuresPerMinute?: number;
  now?: () => number;
  log?: (line: string) => void;
}

export interface StatusRoutes {
  /** whether the path is one of the status page's (the server sends those requests here) */
  owns(pathname: string): boolean;
  handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void>;
  readonly sessions: SessionStore;
}

const MAX_FORM_BYTES = 8 * 1024;
const DEFAULT_LOG_LINES = 200;

export const STATUS_HEADERS: Record<string, string> = {
  "content-security-policy": `default-src 'none'; style-src ${STYLE_SOURCE}; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "cache-control": "no-store",
};

function sendHtml(res: http.ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { ...STATUS_HEADERS, "content-type": "text/html; charset=utf-8", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

function redirect(res: http.ServerResponse, location: string, cookies: string[] = []): void {
  sendHtml(res, 303, page("Redirect: fleet status", html`<p><a href="${location}">Continue</a></p>`),
    { location, ...(cookies.length > 0 ? { "set-cookie": cookies } : {}) });
}

function messagePage(res: http.ServerResponse, status: number, title: string, message: string, headers: Record<string, string> = {}): void {
  sendHtml(res, status, page(`${title}: fleet status`, html`<h1>${title}</h1><p>${message}</p><p><a href="${STATUS_PATHS.status}">The status page</a></p>`), headers);
}

class FormTooLarge extends Error {}

/** An application/x-www-form-urlencoded body of at most MAX_FORM_BYTES. */
function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) { tooLarge = true; chunks.length = 0; return; }
      if (!tooLarge) chunks.push(chunk);
    });
    req.on("end", () => (tooLarge ? reject(new FormTooLarge()) : resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8")))));
    req.on("error", reject);
  });
}

export function createStatusRoutes(opts: StatusRoutesOptions): StatusRoutes {
  const now = opts.now ?? Date.now;
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const sessions = createSessionStore({ ttlSeconds: opts.sessionSeconds ?? 8 * 3600, now });
  // signs the forms' CSRF fields; a new one at each start (sessions do not outlive the process either)
  const csrfSecret = randomId();
  const secure = opts.secureCookies ?? true;
  const logLines = opts.logLines ?? DEFAULT_LOG_LINES;
  const maxFailures = opts.maxFailuresPerMinute ?? 10;
  let failures: number[] = [];

  const sessionOf = (req: http.IncomingMessage): string | undefined => {
    const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    return sessions.valid(id) ? id : undefined;
  };

  /** The sign-in form with a fresh nonce (its cookie goes with it). */
  const showLogin = (res: http.ServerResponse, status: number, error?: string) => {
    const nonce = randomId();
    sendHtml(res, status, loginPage({ csrfToken: csrfToken(nonce, csrfSecret), ...(error ? { error } : {}) }),
      { "set-cookie": loginNonceCookie(nonce, { secure }) });
  };

  const tooManyFailures = (): number | undefined => {
    const t = now();
    failures = failures.filter((at) => t - at < 60_000);
    return failures.length >= maxFailures ? Math.ceil((failures[0]! + 60_000 - t) / 1000) : undefined;
  };

  async function login(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const form = await readForm(req);
    const nonce = parseCookies(req.headers.cookie)[LOGIN_NONCE_COOKIE];
    if (!checkCsrf(form.get(FORM_FIELDS.csrf) ?? undefined, nonce, csrfSecret)) {
      showLogin(res, 403, "The sign-in form had expired or did not come from this page. Please sign in again.");
      return;
    }
    const wait = tooManyFailures();
    if (wait !== undefined) {
      showLogin(res, 429, `Too many failed sign-ins: try again in ${wait} seconds.`);
      return;
    }
    if (!checkToken(form.get(FORM_FIELDS.token) ?? undefined, opts.token)) {
      failures.push(now());
      log(`status page: a failed sign-in (${failures.length} in the last minute)`);
      showLogin(res, 401, "That is not the operator token.");
      return;
    }
    const id = sessions.create();
    redirect(res, STATUS_PATHS.status, [sessions.sessionCookie(id, { secure }), clearNonce()]);
  }

  const clearNonce = () => `${LOGIN_NONCE_COOKIE}=; HttpOnly; SameSite=Strict; Path=${SESSION_PATH}/login; Max-Age=0${secure ? "; Secure" : ""}`;

  async function logout(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const form = await readForm(req);
    const session = sessionOf(req);
    if (session && !checkCsrf(form.get(FORM_FIELDS.csrf) ?? undefined, session, csrfSecret)) {
      messagePage(res, 403, "Not signed out", "The sign-out form did not come from this page.");
      return;
    }
    sessions.destroy(session);
    redirect(res, STATUS_PATHS.login, [clearSessionCookie({ secure })]);
  }

  async function status(session: string, res: http.ServerResponse): Promise<void> {
    const data = await opts.data();
    sendHtml(res, 200, statusPage({ ...data, csrfToken: csrfToken(session, csrfSecret) }));
  }

  async function logs(url: URL, res: http.ServerResponse): Promise<void> {
    const environment = url.searchParams.get("environment") ?? "";
    const customer = url.searchParams.get("customer") ?? "";
    try {
      parseCustomerTarget(customer, environment);
    } catch {
      messagePage(res, 400, "No such customer", "The link names no valid environment and customer.");
      return;
    }
    let lines: string[];
    try {
      lines = await opts.logs(environment, customer, logLines);
    } catch (err) {
      if (err instanceof NotFound) { messagePage(res, 404, "No such customer", err.message); return; }
      throw err;
    }
    sendHtml(res, 200, logsPage({ environment, customer, lines }));
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    try {
      if (!opts.token) {
        messagePage(res, 404, "Status page disabled", "The status page is disabled: FLEET_STATUS_TOKEN is not set on the server.");
        return;
      }
      const method = req.method ?? "GET";
      const allow = (methods: string[]) => {
        if (methods.includes(method)) return true;
        messagePage(res, 405, "Method not allowed", `${url.pathname} takes ${methods.join(" or ")}.`, { allow: methods.join(", ") });
        return false;
      };
      switch (url.pathname) {
        case STATUS_PATHS.login:
          if (!allow(["GET", "POST"])) return;
          if (method === "POST") return await login(req, res);
          if (sessionOf(req)) return redirect(res, STATUS_PATHS.status);
          return showLogin(res, 200);
        case STATUS_PATHS.logout:
          if (!allow(["POST"])) return;
          return await logout(req, res);
        case STATUS_PATHS.status:
        case `${STATUS_PATHS.status}/`:
        case STATUS_PATHS.logs: {
          if (!allow(["GET"])) return;
          const session = sessionOf(req);
          if (!session) return redirect(res, STATUS_PATHS.login);
          return url.pathname === STATUS_PATHS.logs ? await logs(url, res) : await status(session, res);
        }
        default:
          messagePage(res, 404, "Not found", "There is no such page.");
      }
    } catch (err) {
      if (err instanceof FormTooLarge) {
        if (!res.headersSent) messagePage(res, 413, "Form too large", "That form is larger than a sign-in form.", { connection: "close" });
        return;
      }
      log(`${req.method} ${url.pathname}: 500 ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      if (!res.headersSent) messagePage(res, 500, "Error", "The fleet's state could not be read; the server's log says why.");
    }
  }

  return {
    sessions,
    owns: (pathname) => pathname === SESSION_PATH || pathname.startsWith(`${SESSION_PATH}/`),
    handle,
  };
}
