/**
 * The operator's status page of `fleet serve`, rendered on the server: the sign-in form, every
 * environment's customers with their state, backups and usage, the recent alerts and webhook jobs,
 * and one customer's recent logs. Pure: plain data in, a complete HTML document out.
 *
 * No script at all (the server's CSP allows none) and no external resource: one inline <style>, inline
 * SVG for the usage graphs. Every value from outside goes through the escaping `html` tag. A state is
 * always written in words beside its colour; the colour pairs meet WCAG AA (ratios in the CSS).
 */
import { createHash } from "node:crypto";
import type { CustomerListing } from "../fleet/listing";
import type { Alert } from "../watch/health";
import type { Job } from "../webhooks/queue";
import { html, httpUrl, printable, raw, type Safe, time } from "./html";

/** The routes the pages link and post to (the server answers them). */
export const STATUS_PATHS = { status: "/status", login: "/status/login", logout: "/status/logout", logs: "/status/logs" } as const;
/** The names of the form fields the server reads. */
export const FORM_FIELDS = { token: "token", csrf: "csrf" } as const;

/** A customer's logs page: /status/logs?environment=<env>&customer=<id> */
export function logsHref(environment: string, customer: string): string {
  return `${STATUS_PATHS.logs}?${new URLSearchParams({ environment, customer }).toString()}`;
}

/** A series for the usage graph, oldest first (non-finite values are left out). */
export interface UsageSeries {
  /** what is measured, in words: "CPU", "memory" */
  what: string;
  /** "%", "MiB", "requests/min" */
  unit: string;
  values: number[];
}

/**
 * One customer's row: what `fleet list` gives (src/fleet/listing.ts), and its usage. `health` (the
 * engine's word: healthy, unhealthy, paused, not deployed) is shown when the watcher has no state.
 */
export type StatusCustomer = Pick<CustomerListing, "customer" | "plan" | "url" | "version" | "lastUpdate" | "lastBackup" | "lastDrill" | "watcher"> & {
  health?: string;
  /** one graph, or several one above the other */
  usage?: UsageSeries | UsageSeries[];
};

export type StatusAlert = Pick<Alert, "id" | "kind" | "environment" | "customer" | "check" | "at" | "reason">;
export type StatusJob = Pick<Job, "id" | "status" | "environment" | "customer" | "action" | "updatedAt" | "lastError" | "note">;

export interface StatusData {
  /** ISO time the data was read */
  generatedAt: string;
  environments: { name: string; customers: StatusCustomer[] }[];
  /** shown in the order given (newest first, say) */
  alerts: StatusAlert[];
  jobs: StatusJob[];
  /** the CSRF token of the session, for the sign-out form */
  csrfToken: string;
}

/*
 * Colours (WCAG 2 contrast ratios, computed from the sRGB relative luminance; AA for text is 4.5:1):
 *   text    #1f2328 on #ffffff 15.80, on #f6f8fa 14.84, on #eaeef2 13.55, on #fff1f0 14.36, on #f0b400 8.45
 *   links   #0550ae on #ffffff  7.59, on #f6f8fa  7.13
 *   muted   #57606a on #ffffff  6.39, on #f6f8fa  6.00
 *   ok      #116329 on #ffffff  7.39, on #f6f8fa  6.94
 *   error   #b42318 on #fff1f0  5.98
 *   badges  #ffffff on #1a7f37 (up) 5.08, on #b42318 (down, FAILED) 6.57, on #57606a (unknown) 6.39,
 *           on #0550ae (buttons, skip link) 7.59; #1f2328 on #f0b400 (degraded) 8.45, on #eaeef2 (not watched) 13.55
 * A rule that sets a background sets its text colour too; text-only colours sit on #ffffff or #f6f8fa.
 */
const CSS = `
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#ffffff}
header,main{max-width:90rem;margin:0 auto;padding:1rem}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;justify-content:space-between;border-bottom:1px solid #d0d7de}
h1{font-size:1.5rem;margin:0}
h2{font-size:1.25rem;margin:1.5rem 0 .5rem}
h3{font-size:1.1rem;margin:1rem 0 .5rem}
a{color:#0550ae}
a:focus-visible,button:focus-visible,input:focus-visible,summary:focus-visible,.scroll:focus-visible,main:focus-visible{outline:3px solid #0550ae;outline-offset:2px}
.skip{position:absolute;left:-999rem;top:0}
.skip:focus{left:1rem;top:1rem;z-index:1;padding:.5rem 1rem;color:#ffffff;background:#0550ae}
.scroll{position:relative;overflow-x:auto;margin:0 0 1.5rem;border:1px solid #d0d7de}
table{border-collapse:collapse;width:100%}
caption{text-align:left;font-weight:600;padding:.5rem .6rem}
th,td{text-align:left;vertical-align:top;padding:.4rem .6rem;border-top:1px solid #d0d7de}
thead th{white-space:nowrap;background:#f6f8fa}
tbody tr:nth-child(even){background:#f6f8fa}
.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;font-weight:600;white-space:nowrap}
.state-up{color:#ffffff;background:#1a7f37}
.state-degraded{color:#1f2328;background:#f0b400}
.state-down{color:#ffffff;background:#b42318}
.state-unknown{color:#ffffff;background:#57606a}
.state-unwatched{color:#1f2328;background:#eaeef2}
.ok{color:#116329;font-weight:600}
.muted{color:#57606a}
.error{color:#b42318;background:#fff1f0;border:1px solid #b42318;padding:.5rem .75rem;max-width:30rem}
.nowrap{white-space:nowrap}
.wrap{white-space:pre-wrap;overflow-wrap:anywhere;min-width:12rem}
.spark{vertical-align:middle;color:#0550ae}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=password]{font:inherit;padding:.5rem;width:100%;max-width:30rem;border:1px solid #57606a;border-radius:.3rem;color:#1f2328;background:#ffffff}
button{font:inherit;margin-top:1rem;padding:.5rem 1rem;border:0;border-radius:.3rem;cursor:pointer;color:#ffffff;background:#0550ae}
header form button{margin:0}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.875rem;padding:.75rem;border:1px solid #d0d7de;color:#1f2328;background:#f6f8fa}
details pre{margin:.25rem 0 0}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:40rem){header,main{padding:.5rem}th,td{padding:.3rem .4rem}}
`;

/** The CSP source of the one inline <style> of every page: 'sha256-...' (the server allows that style and nothing else). */
export const STYLE_SOURCE = `'sha256-${createHash("sha256").update(CSS, "utf8").digest("base64")}'`;

/** The shared document: head, styles, a skip link to the main content; `header` goes before it. */
export function page(title: string, body: Safe, opts: { header?: Safe } = {}): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${title}</title>
<style>${raw(CSS)}</style>
</head>
<body>
<a class="skip" href="#main">Skip to main content</a>
${opts.header ? html`<header>${opts.header}</header>` : ""}
<main id="main" tabindex="-1">
${body}
</main>
</body>
</html>
`.html;
}

/** The sign-in form; it shows nothing of the fleet. */
export function loginPage(opts: { error?: string; csrfToken: string }): string {
  const error = opts.error ? html`<p class="error" id="login-error" role="alert">${opts.error}</p>` : "";
  const described = opts.error ? html` aria-describedby="login-error" aria-invalid="true"` : "";
  return page("Sign in: fleet status", html`<h1>Fleet status</h1>
<p>Sign in with the operator token of <code>fleet serve</code> (<code>FLEET_STATUS_TOKEN</code>).
The session cookie is sent over HTTPS only (or to localhost).</p>
${error}
<form method="post" action="${STATUS_PATHS.login}">
<input type="hidden" name="${FORM_FIELDS.csrf}" value="${opts.csrfToken}">
<label for="token">Operator token</label>
<input id="token" name="${FORM_FIELDS.token}" type="password" autocomplete="current-password" required${described}>
<button type="submit">Sign in</button>
</form>`);
}

type StateKind = "up" | "degraded" | "down" | "unknown" | "unwatched";

function badge(kind: StateKind, words: string): Safe {
  return html`<span class="badge state-${kind}">${words}</span>`;
}

/** The engine's word for a customer nobody watches: the state it means. */
function engineKind(health: string): StateKind {
  if (/^(healthy|running)\b/.test(health)) return "up";
  if (health === "starting") return "degraded";
  if (/^(unhealthy|paused|exited|dead|restarting|created|removing|no running task)\b/.test(health)) return "down";
  return "unknown";
}

/** The state in words and colour: up, degraded/down since <time>: <reason>, unknown, not watched (with the engine's word). */
function stateOf(c: Pick<StatusCustomer, "watcher" | "health">): { kind: StateKind; cell: Safe } {
  const w = c.watcher;
  if (!w) {
    if (!c.health) return { kind: "unwatched", cell: badge("unwatched", "not watched") };
    if (c.health === "not deployed") return { kind: "unwatched", cell: badge("unwatched", "not deployed") };
    // the engine's healthcheck only: a frozen container can still say healthy
    const kind = engineKind(c.health);
    return { kind, cell: html`${badge(kind, STATE_WORDS[kind])} <span class="muted">engine: ${c.health}; not watched</span>` };
  }
  if (w.stale) {
    // the watcher has not looked for three intervals: what it said last is no longer the state
    return { kind: "unknown", cell: html`${badge("unknown", "unknown")} <span class="muted">the watcher last looked at ${time(w.updatedAt)} (it said ${w.status}; is <code>fleet watch</code> running?)</span>` };
  }
  switch (w.status) {
    case "up": return { kind: "up", cell: badge("up", "up") };
    case "degraded":
    case "down": {
      const reason = w.reason ? html`: <span class="wrap">${w.reason}</span>` : "";
      return { kind: w.status, cell: html`${badge(w.status, w.status)} since ${time(w.since)}${reason}` };
    }
    default: return { kind: "unknown", cell: badge("unknown", "unknown") };
  }
}

function outcome(o: StatusCustomer["lastBackup"]): Safe {
  if (!o) return html`<span class="muted">never</span>`;
  if (o.ok) return html`<span class="ok">ok</span> <span class="nowrap">${time(o.at)}</span>`;
  const why = o.error ? html`<div class="wrap">${firstLines(o.error)}</div>` : "";
  return html`<span class="badge state-down">FAILED</span> <span class="nowrap">${time(o.at)}</span>${why}`;
}

/** Long text (a Pulumi error, a healthcheck's output): its first line, the rest behind a disclosure (flow content: for a td or div). */
function firstLines(text: string): Safe {
  const clean = printable(text).trim();
  const [first = "", ...rest] = clean.split("\n");
  if (rest.length === 0 && first.length <= 200) return html`${first}`;
  return html`<details><summary>${first.slice(0, 200)}${first.length > 200 ? "…" : ""}</summary><pre>${clean}</pre></details>`;
}

function number(n: number): string {
  return Math.abs(n) >= 100 ? String(Math.round(n)) : String(Number(n.toFixed(2)));
}

const SPARK_W = 96;
const SPARK_H = 24;

/** The usage graph: an inline SVG line, its minimum, maximum and last value in words for assistive technology. */
export function sparkline(u: UsageSeries | undefined): Safe {
  const values = (u?.values ?? []).filter((v) => Number.isFinite(v));
  if (!u || values.length === 0) return html`<span class="muted">no data</span>`;
  const min = Math.min(...values);
  const max = Math.max(...values);
  const last = values[values.length - 1]!;
  const unit = u.unit ? ` ${u.unit}` : "";
  const label = `${u.what}, ${values.length} ${values.length === 1 ? "sample" : "samples"}: minimum ${number(min)}${unit}, ` +
    `maximum ${number(max)}${unit}, last ${number(last)}${unit}`;
  const pad = 2;
  const span = max - min || 1;
  const x = (i: number) => values.length === 1 ? SPARK_W / 2 : pad + (i * (SPARK_W - 2 * pad)) / (values.length - 1);
  const y = (v: number) => SPARK_H - pad - ((v - min) / span) * (SPARK_H - 2 * pad);
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const lastX = x(values.length - 1).toFixed(1);
  const lastY = y(last).toFixed(1);
  return html`<svg class="spark" role="img" aria-label="${label}" width="${String(SPARK_W)}" height="${String(SPARK_H)}" viewBox="0 0 ${String(SPARK_W)} ${String(SPARK_H)}" focusable="false"><polyline fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round" points="${points}"/><circle cx="${lastX}" cy="${lastY}" r="2" fill="currentColor"/></svg> <span class="nowrap" aria-hidden="true">${number(last)}${unit}</span>`;
}

/** A table in a horizontally scrolling region a keyboard can reach, named by its caption. */
function table(id: string, caption: Safe | string, head: string[], rows: Safe[]): Safe {
  return html`<div class="scroll" role="region" aria-labelledby="${id}" tabindex="0">
<table>
<caption id="${id}">${caption}</caption>
<thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
<tbody>
${rows}
</tbody>
</table>
</div>
`;
}

function customerRow(environment: string, c: StatusCustomer): Safe {
  const state = stateOf(c);
  const href = httpUrl(c.url);
  const url = href ? html`<a href="${href}">${c.url}</a>` : html`<span class="muted">${c.url}</span>`;
  const deployed = c.lastUpdate === "never" ? html`<span class="muted">never</span>` : html`<span class="nowrap">${time(c.lastUpdate)}</span>`;
  return html`<tr>
<th scope="row">${c.customer}</th>
<td>${state.cell}</td>
<td>${c.plan}</td>
<td>${c.version}</td>
<td>${url}</td>
<td>${deployed}</td>
<td>${outcome(c.lastBackup)}</td>
<td>${outcome(c.lastDrill)}</td>
<td class="nowrap">${Array.isArray(c.usage) ? c.usage.map((u) => html`<div>${sparkline(u)}</div>`) : sparkline(c.usage)}</td>
<td><a href="${logsHref(environment, c.customer)}">Logs<span class="vh"> of ${c.customer}</span></a></td>
</tr>
`;
}

const STATE_WORDS: Record<StateKind, string> = { up: "up", degraded: "degraded", down: "down", unknown: "unknown", unwatched: "not watched" };

function environmentSection(env: StatusData["environments"][number], index: number): Safe {
  const counts = new Map<StateKind, number>();
  for (const c of env.customers) {
    const kind = stateOf(c).kind;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  const summary = (Object.keys(STATE_WORDS) as StateKind[]).filter((k) => counts.has(k)).map((k) => `${counts.get(k)} ${STATE_WORDS[k]}`).join(", ");
  const n = env.customers.length;
  const caption = html`Environment ${env.name}: ${n} ${n === 1 ? "customer" : "customers"}${summary ? ` (${summary})` : ""}`;
  if (n === 0) return html`<h3>Environment ${env.name}</h3><p>No customers.</p>`;
  return html`<h3>Environment ${env.name}</h3>
${table(`env-${index}`, caption, ["Customer", "State", "Plan", "Version", "URL", "Last deployment", "Last backup", "Last drill", "Usage", "Logs"],
    env.customers.map((c) => customerRow(env.name, c)))}`;
}

function alertRow(a: StatusAlert): Safe {
  const kind = a.kind === "down" ? badge("down", "down") : badge("up", "recovered");
  const subject = a.check ? `${a.check}: ${a.customer}` : a.customer;
  return html`<tr>
<td class="nowrap">${time(a.at)}</td>
<td>${a.environment}</td>
<th scope="row">${subject}</th>
<td>${kind}</td>
<td class="wrap">${firstLines(a.reason)}</td>
</tr>
`;
}

const JOB_STATE: Record<StatusJob["status"], StateKind> = {
  done: "up", running: "degraded", failed: "down", refused: "down", queued: "unwatched", ignored: "unwatched",
};

function jobRow(j: StatusJob): Safe {
  const error = j.lastError ? firstLines(j.lastError) : j.note ? html`<div class="muted">${firstLines(j.note)}</div>` : "";
  return html`<tr>
<th scope="row">${String(j.id)}</th>
<td>${badge(JOB_STATE[j.status] ?? "unknown", j.status)}</td>
<td>${j.environment}</td>
<td>${j.customer ?? html`<span class="muted">none</span>`}</td>
<td>${j.action ?? html`<span class="muted">none</span>`}</td>
<td class="nowrap">${time(j.updatedAt)}</td>
<td class="wrap">${error}</td>
</tr>
`;
}

/** The status page: each environment's customers, then the recent alerts and webhook jobs. */
export function statusPage(data: StatusData): string {
  const header = html`<h1>Fleet status</h1>
<p>As of ${time(data.generatedAt)}</p>
<form method="post" action="${STATUS_PATHS.logout}">
<input type="hidden" name="${FORM_FIELDS.csrf}" value="${data.csrfToken}">
<button type="submit">Sign out</button>
</form>`;
  const environments = data.environments.length === 0
    ? html`<p>No environments.</p>`
    : data.environments.map(environmentSection);
  const alerts = data.alerts.length === 0
    ? html`<p>No recent alerts.</p>`
    : table("alerts", `Recent alerts (${data.alerts.length})`, ["Time", "Environment", "Customer", "Kind", "Reason"], data.alerts.map(alertRow));
  const jobs = data.jobs.length === 0
    ? html`<p>No recent webhook jobs.</p>`
    : table("jobs", `Recent webhook jobs (${data.jobs.length})`, ["Job", "Status", "Environment", "Customer", "Action", "Updated", "Error"], data.jobs.map(jobRow));
  return page("Fleet status", html`<nav aria-label="Sections"><a href="#customers">Customers</a> · <a href="#alerts-h">Alerts</a> · <a href="#jobs-h">Webhook jobs</a></nav>
<section aria-labelledby="customers"><h2 id="customers">Customers</h2>
${environments}
</section>
<section aria-labelledby="alerts-h"><h2 id="alerts-h">Alerts</h2>
${alerts}
</section>
<section aria-labelledby="jobs-h"><h2 id="jobs-h">Webhook jobs</h2>
${jobs}
</section>`, { header });
}

/** A customer's recent log lines (oldest first), escaped, with the way back; without `since`: its last lines. */
export function logsPage(opts: { environment: string; customer: string; lines: string[]; since?: string }): string {
  const n = opts.lines.length;
  const since = opts.since ? html` since ${time(opts.since)}` : "";
  const body = n === 0
    ? html`<p>No log lines${since}.</p>`
    : html`<p>${opts.since ? "" : "The last "}${String(n)} ${n === 1 ? "line" : "lines"}${since}, oldest first.</p>
<pre>${opts.lines.map((l) => printable(l)).join("\n")}</pre>`;
  return page(`Logs of ${opts.customer} (${opts.environment}): fleet status`, html`<p><a href="${STATUS_PATHS.status}">Back to the status page</a></p>
<h1>Logs of ${opts.customer} in ${opts.environment}</h1>
${body}
<p><a href="${STATUS_PATHS.status}">Back to the status page</a></p>`);
}
