/**
 * The status page's rendering and sessions: every value from outside comes out escaped and inert
 * (customer ids, reasons, errors, log lines); the pages have no script, labelled inputs, captioned
 * tables with scoped headers, states in words, colour pairs of at least 4.5:1 (computed here from the
 * CSS); cookies, the token check, CSRF and session expiry on an injected clock.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { escapeHtml, html, printable, raw } from "../../src/statusPage/html";
import { loginPage, logsHref, logsPage, sparkline, statusPage, type StatusCustomer, type StatusData } from "../../src/statusPage/pages";
import {
  checkCsrf, checkToken, clearSessionCookie, createSessionStore, csrfToken, loginNonceCookie, parseCookies, randomId,
} from "../../src/statusPage/session";

const EVIL_ID = `acme"><script>alert(1)</script>&'x`;
const EVIL_REASON = `<img src=x onerror="alert(1)"> & 'quoted'`;

const T = "2025-03-01T12:00:00.000Z";

function customer(id: string, watcher: StatusCustomer["watcher"], extra: Partial<StatusCustomer> = {}): StatusCustomer {
  return {
    customer: id, plan: "small", url: `https://${id}.example.com/`, version: "1.4.2", lastUpdate: T,
    lastBackup: { at: T, ok: true, snapshot: "abc" }, lastDrill: null, watcher, ...extra,
  };
}

const w = (status: string, reason = "", stale = false) => ({ status, since: T, reason, updatedAt: T, stale });

const DATA: StatusData = {
  generatedAt: T,
  csrfToken: "csrf-token-value",
  environments: [
    {
      name: "prod",
      customers: [
        customer("alpha", w("up"), { usage: { what: "CPU", unit: "%", values: [1, 5, 3.25, 12] } }),
        customer("beta", w("degraded", "unhealthy: db slow")),
        customer(EVIL_ID, w("down", EVIL_REASON), {
          url: "javascript:alert(1)",
          lastBackup: { at: T, ok: false, error: `restic: <b>locked</b>\nsecond line` },
          lastDrill: { at: T, ok: false, error: "drill failed" },
        }),
        customer("delta", w("unknown")),
        customer("epsilon", null, { lastUpdate: "never", lastBackup: null, url: "-", version: "-" }),
        customer("zeta", w("down", "old news", true)),
      ],
    },
    { name: "staging", customers: [] },
  ],
  alerts: [
    { id: "prod/x@t:down", kind: "down", environment: "prod", customer: EVIL_ID, at: T, reason: EVIL_REASON },
    { id: "prod/y@t:recovered", kind: "recovered", environment: "prod", customer: "beta", check: "backup", at: T, reason: "stale" },
  ],
  jobs: [
    { id: 7, status: "failed", environment: "prod", customer: EVIL_ID, action: "provision", updatedAt: T, lastError: `pulumi: "bad" <x> & y`, note: null },
    { id: 8, status: "ignored", environment: "prod", customer: null, action: null, updatedAt: T, lastError: null, note: "event type not acted on" },
  ],
};

const LOG_LINES = ["\x1b[31mred\x1b[0m start", `<script>alert("log")</script>`, "a & b\r", "bell\x07"];

const pages = () => ({
  status: statusPage(DATA),
  empty: statusPage({ ...DATA, environments: [], alerts: [], jobs: [] }),
  login: loginPage({ csrfToken: "n0nce" }),
  loginError: loginPage({ csrfToken: "n0nce", error: `wrong token <img src=x onerror=alert(1)>` }),
  logs: logsPage({ environment: "prod", customer: EVIL_ID, lines: LOG_LINES, since: T }),
  noLogs: logsPage({ environment: "prod", customer: "alpha", lines: [], since: "10m" }),
});

/** Each tag's name and attributes, in order (attribute values unescaped are not needed here). */
function tags(doc: string): { name: string; closing: boolean; selfClosing: boolean; attrs: Record<string, string>; raw: string }[] {
  const out = [];
  for (const m of doc.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>/]+(?:="[^"]*")?)*)\s*(\/?)>/g)) {
    const attrs: Record<string, string> = {};
    for (const a of m[3]!.matchAll(/([^\s=>/]+)(?:="([^"]*)")?/g)) attrs[a[1]!.toLowerCase()] = a[2] ?? "";
    out.push({ name: m[2]!.toLowerCase(), closing: m[1] === "/", selfClosing: m[4] === "/", attrs, raw: m[0] });
  }
  return out;
}

const VOID = new Set(["meta", "link", "input", "br", "img", "hr"]);
const BLOCK = new Set(["div", "p", "pre", "details", "table", "form", "section", "h1", "h2", "h3"]);

/** Every element closed in order, and no block inside a span or p. */
function assertBalanced(doc: string): void {
  const stack: string[] = [];
  for (const t of tags(doc)) {
    if (VOID.has(t.name) || t.selfClosing) continue;
    if (!t.closing && BLOCK.has(t.name)) assert.ok(!stack.includes("span") && !stack.includes("p"), `<${t.name}> inside ${stack.join(">")}`);
    if (!t.closing) stack.push(t.name);
    else assert.equal(stack.pop(), t.name, `</${t.name}> closes the wrong element`);
  }
  assert.deepEqual(stack, [], "unclosed elements");
}

describe("html escaping", () => {
  it("escapes text and attribute values, keeps raw() and nested templates as they are", () => {
    assert.equal(escapeHtml(`<script>"a" & 'b'</script>`), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;");
    const v = `"><script>x</script>`;
    assert.equal(html`<a title="${v}">${v}</a>`.html,
      `<a title="&quot;&gt;&lt;script&gt;x&lt;/script&gt;">&quot;&gt;&lt;script&gt;x&lt;/script&gt;</a>`);
    assert.equal(html`<p>${raw("<b>x</b>")}${html`<i>${"&"}</i>`}</p>`.html, "<p><b>x</b><i>&amp;</i></p>");
    assert.equal(html`<p>${["<", null, undefined, false, 3]}</p>`.html, "<p>&lt;3</p>");
  });

  it("refuses an unquoted attribute value, not an = in text", () => {
    assert.throws(() => html`<a href=${"x onmouseover=alert(1)"}>`, /unquoted attribute/);
    assert.equal(html`<p>min=${"1"}</p>`.html, "<p>min=1</p>");
  });

  it("makes container output printable: no escape sequences or control characters", () => {
    assert.equal(printable("\x1b[1;31mred\x1b[0m\r\nnext\x07\tend\r"), "red\nnext\ufffd\tend");
  });
});

describe("status pages", () => {
  it("are complete documents: doctype, lang, viewport, one style, a skip link to main, balanced tags", () => {
    for (const [name, doc] of Object.entries(pages())) {
      assert.match(doc, /^<!doctype html>\n<html lang="en">/, name);
      assert.match(doc, /<meta name="viewport" content="width=device-width, initial-scale=1">/, name);
      assert.equal(doc.match(/<style>/g)?.length, 1, name);
      assert.match(doc, /<a class="skip" href="#main">Skip to main content<\/a>/, name);
      assert.match(doc, /<main id="main"/, name);
      assertBalanced(doc);
    }
  });

  it("have no script, no event handler, no style attribute, no external resource", () => {
    for (const [name, doc] of Object.entries(pages())) {
      assert.doesNotMatch(doc, /<script/i, name);
      for (const t of tags(doc)) {
        for (const attr of Object.keys(t.attrs)) {
          assert.ok(!attr.startsWith("on"), `${name}: ${t.raw} has an event handler`);
          assert.notEqual(attr, "style", `${name}: ${t.raw} has a style attribute`);
        }
        if (t.name === "img") assert.fail(`${name}: an <img> came through: ${t.raw}`);
        for (const key of ["href", "src", "action"]) {
          const v = t.attrs[key];
          if (v !== undefined) assert.match(v, /^(\/status|#|https?:\/\/|data:,$)/, `${name}: ${t.raw}`);
        }
      }
    }
  });

  it("escape customer ids, reasons, errors and log lines: they come out as text", () => {
    const { status, logs } = pages();
    const id = "acme&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#39;x";
    assert.ok(status.includes(`<th scope="row">${id}</th>`));
    assert.ok(status.includes("&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#39;quoted&#39;"));
    assert.ok(status.includes("restic: &lt;b&gt;locked&lt;/b&gt;"));
    assert.ok(status.includes("pulumi: &quot;bad&quot; &lt;x&gt; &amp; y"));
    // the logs link carries the id URL-encoded, then attribute-escaped
    assert.ok(status.includes(`href="${escapeHtml(logsHref("prod", EVIL_ID))}"`));
    assert.equal(new URL(logsHref("prod", EVIL_ID), "http://x").searchParams.get("customer"), EVIL_ID);
    // a URL that is not http(s) is shown, never linked
    assert.ok(!status.includes('href="javascript:'));
    assert.ok(status.includes('<span class="muted">javascript:alert(1)</span>'));
    assert.ok(logs.includes(`<pre>red start\n&lt;script&gt;alert(&quot;log&quot;)&lt;/script&gt;\na &amp; b\nbell\ufffd</pre>`));
    assert.ok(logs.includes(`<h1>Logs of ${id} in prod</h1>`));
    assert.match(logs, /<a href="\/status">Back to the status page<\/a>/);
  });

  it("label every input (hidden ones aside)", () => {
    for (const [name, doc] of Object.entries(pages())) {
      const labels = new Set(tags(doc).filter((t) => t.name === "label").map((t) => t.attrs.for));
      for (const t of tags(doc).filter((t) => ["input", "select", "textarea"].includes(t.name) && !t.closing)) {
        if (t.attrs.type === "hidden") continue;
        assert.ok(t.attrs.id && labels.has(t.attrs.id), `${name}: ${t.raw} has no label`);
      }
    }
  });

  it("give every table a caption and every header cell a scope; each table scrolls in a labelled, focusable region", () => {
    for (const [name, doc] of Object.entries(pages())) {
      for (const m of doc.matchAll(/<table>([\s\S]*?)<\/table>/g)) {
        assert.match(m[1]!, /^\s*<caption id="[^"]+">[^<]*\S[^<]*<\/caption>/, `${name}: a table without a caption`);
      }
      for (const t of tags(doc).filter((t) => t.name === "th" && !t.closing)) {
        assert.ok(t.attrs.scope === "col" || t.attrs.scope === "row", `${name}: ${t.raw}`);
      }
      for (const t of tags(doc).filter((t) => t.attrs.role === "region")) {
        assert.equal(t.attrs.tabindex, "0");
        assert.ok(doc.includes(`<caption id="${t.attrs["aria-labelledby"]}">`), `${name}: region names no caption`);
      }
    }
    const status = pages().status;
    assert.equal(status.match(/<table>/g)?.length, 3, "prod, alerts, jobs (staging has no customers)");
    assert.ok(status.includes("Environment prod: 6 customers (1 up, 1 degraded, 1 down, 2 unknown, 1 not watched)"));
  });

  it("write the state in words beside its colour", () => {
    const status = pages().status;
    const badges = [...status.matchAll(/<span class="badge state-([a-z]+)">([^<]+)<\/span>/g)].map((m) => `${m[1]}=${m[2]}`);
    for (const b of ["up=up", "degraded=degraded", "down=down", "unknown=unknown", "unwatched=not watched", "down=FAILED", "up=recovered", "down=failed", "unwatched=ignored"]) {
      assert.ok(badges.includes(b), `${b} in ${badges.join(" ")}`);
    }
    assert.match(status, /state-degraded">degraded<\/span> since <time datetime="2025-03-01T12:00:00.000Z">2025-03-01 12:00:00Z<\/time>: <span class="wrap">unhealthy: db slow/);
    assert.match(status, /state-down">down<\/span> since <time[^>]*>[^<]+<\/time>: <span class="wrap">&lt;img/);
    // an old view of the watcher is not shown as the state
    assert.match(status, /state-unknown">unknown<\/span> <span class="muted">the watcher last looked at <time[^>]*>[^<]+<\/time> \(it said down;/);
    assert.match(status, /<span class="ok">ok<\/span>/);
    assert.match(status, /<span class="muted">never<\/span>/);
  });

  it("draw usage as an SVG image named with its minimum, maximum and last value", () => {
    const svg = sparkline({ what: "CPU", unit: "%", values: [1, 5, Number.NaN, 3.25, 12] }).html;
    assert.match(svg, /^<svg class="spark" role="img" aria-label="CPU, 4 samples: minimum 1 %, maximum 12 %, last 12 %"/);
    assert.equal(svg.match(/points="([^"]+)"/)?.[1]?.split(" ").length, 4);
    assert.equal(sparkline(undefined).html, '<span class="muted">no data</span>');
    assert.match(sparkline({ what: "memory", unit: "MiB", values: [300] }).html, /aria-label="memory, 1 sample: minimum 300 MiB, maximum 300 MiB, last 300 MiB"/);
    assert.ok(pages().status.includes('aria-label="CPU, 4 samples: minimum 1 %, maximum 12 %, last 12 %"'));
  });

  it("use colour pairs of at least 4.5:1 (computed from the CSS)", () => {
    const css = pages().status.match(/<style>([\s\S]*)<\/style>/)![1]!.replace(/\/\*[\s\S]*?\*\//g, "");
    const rules = [...css.matchAll(/([^{}]+)\{([^{}]*)\}/g)].map((m) => ({ selector: m[1]!.trim(), decls: m[2]! }));
    const prop = (decls: string, name: string) => new RegExp(`(?:^|;)\\s*${name}\\s*:\\s*(#[0-9a-fA-F]{6})\\b`).exec(decls)?.[1];
    const luminance = (hex: string) => {
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
      return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
    };
    const ratio = (a: string, b: string) => {
      const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
      return (hi! + 0.05) / (lo! + 0.05);
    };
    // surfaces: backgrounds set without a text colour (the text on them inherits), and the body's
    const body = rules.find((r) => r.selector === "body")!;
    const surfaces = new Set([prop(body.decls, "background")!]);
    for (const r of rules) if (!prop(r.decls, "color") && prop(r.decls, "background")) surfaces.add(prop(r.decls, "background")!);
    assert.deepEqual([...surfaces].sort(), ["#f6f8fa", "#ffffff"]);
    let pairs = 0;
    for (const r of rules) {
      const fg = prop(r.decls, "color");
      if (!fg) continue;
      const bg = prop(r.decls, "background");
      for (const b of bg ? [bg] : surfaces) {
        const cr = ratio(fg, b);
        assert.ok(cr >= 4.5, `${r.selector}: ${fg} on ${b} is ${cr.toFixed(2)}:1`);
        pairs++;
      }
    }
    assert.ok(pairs >= 15, `${pairs} pairs checked`);
    for (const state of ["up", "degraded", "down", "unknown", "unwatched"]) {
      const r = rules.find((x) => x.selector === `.state-${state}`);
      assert.ok(r && prop(r.decls, "color") && prop(r.decls, "background"), `.state-${state} sets both colours`);
    }
    assert.equal(ratio("#000000", "#ffffff").toFixed(0), "21");
  });

  it("sign in with a labelled password field and a CSRF field, showing nothing of the fleet", () => {
    const { login, loginError } = pages();
    assert.match(login, /<form method="post" action="\/status\/login">/);
    assert.match(login, /<input type="hidden" name="csrf" value="n0nce">/);
    assert.match(login, /<label for="token">Operator token<\/label>\n<input id="token" name="token" type="password" autocomplete="current-password" required>/);
    assert.match(login, /<button type="submit">Sign in<\/button>/);
    assert.doesNotMatch(login, /role="alert"|<table|alpha|prod/);
    assert.match(loginError, /<p class="error" id="login-error" role="alert">wrong token &lt;img src=x onerror=alert\(1\)&gt;<\/p>/);
    assert.match(loginError, /aria-describedby="login-error" aria-invalid="true"/);
  });

  it("sign out by a form carrying the session's CSRF token", () => {
    assert.match(pages().status, /<form method="post" action="\/status\/logout">\n<input type="hidden" name="csrf" value="csrf-token-value">\n<button type="submit">Sign out<\/button>/);
  });
});

describe("status page sessions", () => {
  it("set HttpOnly, SameSite=Strict cookies on /status, Secure when asked", () => {
    const store = createSessionStore({ ttlSeconds: 3600 });
    const id = store.create();
    assert.match(id, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(id, "base64url").length, 32);
    assert.equal(store.sessionCookie(id, { secure: true }), `hf_session=${id}; HttpOnly; SameSite=Strict; Path=/status; Max-Age=3600; Secure`);
    assert.equal(store.sessionCookie(id, { secure: false }), `hf_session=${id}; HttpOnly; SameSite=Strict; Path=/status; Max-Age=3600`);
    assert.equal(clearSessionCookie({ secure: true }), "hf_session=; HttpOnly; SameSite=Strict; Path=/status; Max-Age=0; Secure");
    assert.equal(loginNonceCookie("abc", { secure: true }), "hf_login=abc; HttpOnly; SameSite=Strict; Path=/status/login; Max-Age=600; Secure");
    assert.throws(() => store.sessionCookie("a;b", { secure: true }), /not base64url/);
  });

  it("parse Cookie headers", () => {
    const c = parseCookies(`theme=dark; hf_session=${"a".repeat(43)};hf_session=second; bad; q="quoted"; __proto__=x`);
    assert.equal(c.hf_session, "a".repeat(43));
    assert.equal(c.theme, "dark");
    assert.equal(c.q, "quoted");
    assert.equal(c.bad, undefined);
    assert.equal(Object.getPrototypeOf(c), null);
    assert.deepEqual(Object.keys(parseCookies(undefined)), []);
  });

  it("check the token in constant time: a wrong one of the same length fails", () => {
    const token = "s3cret-operator-token";
    assert.equal(checkToken(token, token), true);
    assert.equal(checkToken("s3cret-operator-tokeN", token), false);
    assert.equal(checkToken("x".repeat(token.length), token), false);
    assert.equal(checkToken("", token), false);
    assert.equal(checkToken(token.slice(0, -1), token), false);
    assert.equal(checkToken(undefined, token), false);
    assert.equal(checkToken("", ""), false, "no server token: nobody signs in");
  });

  it("bind CSRF tokens to the session or nonce and the secret", () => {
    const secret = randomId();
    const session = randomId();
    const token = csrfToken(session, secret);
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(checkCsrf(token, session, secret), true);
    assert.equal(checkCsrf(token, randomId(), secret), false);
    assert.equal(checkCsrf(token, session, randomId()), false);
    assert.equal(checkCsrf(`${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`, session, secret), false);
    assert.equal(checkCsrf(undefined, session, secret), false);
    assert.equal(checkCsrf(token, undefined, secret), false);
    assert.throws(() => csrfToken(session, ""), /secret/);
  });

  it("expire after ttlSeconds, and end on destroy", () => {
    let now = Date.parse(T);
    const store = createSessionStore({ ttlSeconds: 60, now: () => now });
    const a = store.create();
    now += 30_000;
    const b = store.create();
    assert.equal(store.valid(a), true);
    assert.equal(store.size(), 2);
    now += 29_999;
    assert.equal(store.valid(a), true);
    now += 1;
    assert.equal(store.valid(a), false, "60 s after sign-in");
    assert.equal(store.valid(b), true);
    assert.equal(store.size(), 1);
    store.destroy(b);
    assert.equal(store.valid(b), false);
    assert.equal(store.valid(undefined), false);
    assert.equal(store.valid("not-a-session"), false);
    assert.equal(store.valid(randomId()), false);
    assert.throws(() => createSessionStore({ ttlSeconds: 0 }), /at least 1/);
  });
});
