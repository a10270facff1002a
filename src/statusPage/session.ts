/**
 * Sessions of the status page (node:crypto only, in memory: a restart of `fleet serve` signs everyone
 * out). An operator signs in with the server's token; the session id is 32 random bytes in an
 * HttpOnly, SameSite=Strict cookie scoped to /status, valid for a fixed time from sign-in.
 *
 * CSRF: a form carries an HMAC of the session id (signed in) or of a sign-in nonce (the login form,
 * whose nonce rides in its own short cookie) under a secret of the process; it is checked in constant
 * time. Token and CSRF comparisons hash both sides first, so their lengths never leak.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const SESSION_COOKIE = "hf_session";
export const LOGIN_NONCE_COOKIE = "hf_login";
/** the path the session cookie is sent to: the status page and its logs, nothing else of the server */
export const SESSION_PATH = "/status";
/** how long a sign-in form stays usable */
export const LOGIN_NONCE_SECONDS = 600;

/** 32 random bytes, base64url (43 characters): a session id, a nonce, a CSRF secret. */
export function randomId(): string {
  return randomBytes(32).toString("base64url");
}

const ID_SHAPE = /^[A-Za-z0-9_-]{43}$/;
const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Constant-time equality of two strings of any lengths (compares their SHA-256 digests). */
function sameText(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

export interface SessionStore {
  /** a new session, valid for ttlSeconds from now */
  create(): string;
  /** the id is a session that has not expired (an expired one is forgotten) */
  valid(id: string | undefined): boolean;
  /** signs out (nothing for an unknown id) */
  destroy(id: string | undefined): void;
  /** the Set-Cookie value that gives the browser the session */
  sessionCookie(id: string, opts: { secure: boolean }): string;
  /** sessions not expired */
  size(): number;
  readonly ttlSeconds: number;
}

/** `now`: milliseconds since the epoch (a test's clock). */
export function createSessionStore(opts: { ttlSeconds: number; now?: () => number }): SessionStore {
  const { ttlSeconds } = opts;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new Error(`session ttlSeconds must be a whole number of at least 1, not ${ttlSeconds}`);
  const now = opts.now ?? Date.now;
  // keyed by the id's digest: the ids themselves are not kept, and a lookup reveals nothing of them
  const expiry = new Map<string, number>();
  const key = (id: string) => sha256(id).toString("hex");

  const sweep = () => {
    const t = now();
    for (const [k, until] of expiry) if (until <= t) expiry.delete(k);
  };

  return {
    ttlSeconds,
    create() {
      sweep();
      const id = randomId();
      expiry.set(key(id), now() + ttlSeconds * 1000);
      return id;
    },
    valid(id) {
      if (!id || !ID_SHAPE.test(id)) return false;
      const k = key(id);
      const until = expiry.get(k);
      if (until === undefined) return false;
      if (until <= now()) {
        expiry.delete(k);
        return false;
      }
      return true;
    },
    destroy(id) {
      if (id) expiry.delete(key(id));
    },
    sessionCookie(id, { secure }) {
      return cookie(SESSION_COOKIE, id, { path: SESSION_PATH, maxAgeSeconds: ttlSeconds, secure });
    },
    size() {
      sweep();
      return expiry.size;
    },
  };
}

function cookie(name: string, value: string, o: { path: string; maxAgeSeconds: number; secure: boolean }): string {
  if (!/^[A-Za-z0-9_-]*$/.test(value)) throw new Error(`cookie ${name}: value is not base64url`);
  return `${name}=${value}; HttpOnly; SameSite=Strict; Path=${o.path}; Max-Age=${o.maxAgeSeconds}${o.secure ? "; Secure" : ""}`;
}

/** The Set-Cookie value that ends the session in the browser (sign-out). */
export function clearSessionCookie(opts: { secure: boolean }): string {
  return cookie(SESSION_COOKIE, "", { path: SESSION_PATH, maxAgeSeconds: 0, secure: opts.secure });
}

/** The Set-Cookie value carrying the sign-in form's nonce (sent only to the sign-in path). */
export function loginNonceCookie(nonce: string, opts: { secure: boolean }): string {
  return cookie(LOGIN_NONCE_COOKIE, nonce, { path: `${SESSION_PATH}/login`, maxAgeSeconds: LOGIN_NONCE_SECONDS, secure: opts.secure });
}

/** A Cookie header as name to value; the first of a repeated name wins; malformed pairs are skipped. */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (!header) return out;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name && !(name in out)) out[name] = value;
  }
  return out;
}

/** The token typed into the sign-in form matches the server's; never with no server token. */
export function checkToken(given: string | undefined, expected: string | undefined): boolean {
  if (!expected || given === undefined) return false;
  return sameText(given, expected);
}

/** The CSRF token of forms bound to a session id (or a sign-in nonce): HMAC-SHA256 under the process's secret, base64url. */
export function csrfToken(sessionOrNonce: string, secret: string): string {
  if (!secret) throw new Error("csrfToken needs a secret");
  return createHmac("sha256", secret).update(`hf-csrf:${sessionOrNonce}`, "utf8").digest("base64url");
}

/** A form's CSRF field is the token of its session (or nonce); false when either is missing. */
export function checkCsrf(given: string | undefined, sessionOrNonce: string | undefined, secret: string): boolean {
  if (!given || !sessionOrNonce || !secret) return false;
  return sameText(given, csrfToken(sessionOrNonce, secret));
}
