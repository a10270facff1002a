/**
 * What an alert says: the JSON body for an incoming webhook (Slack, Mattermost and Discord all take
 * it: `text` for the first two, `content` for Discord, the same text) and an e-mail. Pure.
 *
 * The reason may carry a healthcheck's output, which the customer's container writes: in the chat text
 * it is cut to one short line and its mentions (@here, <!channel>, <@id>) are broken with a zero-width
 * space, and Discord is told to ping nobody.
 */
import type { Alert } from "./health";

export const ALERT_USERNAME = "hardened-fleet";
/** Discord's limit on `content` */
export const MAX_CONTENT = 2000;
const MAX_CHAT_REASON = 300;
const MAX_MAIL_REASON = 4000;

export interface AlertPayload {
  text: string;
  content: string;
  username: string;
  /** Discord: no @everyone, @here, user or role pings whatever the text holds */
  allowed_mentions: { parse: string[] };
  alert: Alert;
}

/** Where to look further: the fleet's status command, and `docker logs` when the container is known. */
export function lookFurtherCommand(alert: Alert): string {
  const env = `--env ${alert.environment}`;
  switch (alert.check) {
    case "backup": return `npm run fleet -- backups ${alert.customer} ${env}; npm run fleet -- list ${env}`;
    case "drill": return `npm run fleet -- backup drill ${env}`;
    case "certificate": return `npm run fleet -- edge check ${env}; docker logs --tail 100 <the edge proxy of ${alert.environment}>`;
    case "webhooks": return "npm run fleet -- jobs --status failed";
    default: break;
  }
  const status = `npm run fleet -- status ${alert.customer} ${env}`;
  return alert.container ? `${status}; docker logs --tail 100 ${alert.container}` : status;
}

/** "45s", "12m 5s", "3h 20m", "2d 4h" */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/**
 * Control characters out, at most `max` characters; "line": one line; "chat": one line with its
 * mentions broken.
 */
function clean(text: string, max: number, mode: "block" | "line" | "chat"): string {
  let out = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, " ");
  if (mode !== "block") out = out.replace(/\s+/g, " ").trim();
  if (mode === "chat") out = out.replace(/([@<])/g, "$1\u200b");
  return out.length > max ? `${out.slice(0, max - 1)}…` : out;
}

const CHECK_TITLES = { certificate: "certificate of", backup: "backups of", drill: "restore drill of", webhooks: "payment webhook" } as const;

function headline(alert: Alert): string {
  const who = `${alert.check ? `${CHECK_TITLES[alert.check]} ` : ""}${alert.customer} (environment ${alert.environment})`;
  return alert.kind === "down"
    ? `DOWN: ${who} since ${alert.at}`
    : `RECOVERED: ${who} at ${alert.at}, down for ${formatDuration(alert.durationSeconds ?? 0)}` +
      (alert.downSince ? ` since ${alert.downSince}` : "");
}

export function alertPayload(alert: Alert, opts: { lookFurther: string }): AlertPayload {
  const lines = [
    headline(alert),
    `${alert.kind === "down" ? "reason" : "it was"}: ${clean(alert.reason, MAX_CHAT_REASON, "chat")}`,
    `look further: \`${clean(opts.lookFurther, 400, "line").replace(/`/g, "'")}\``,
    `incident ${alert.incident}`,
  ];
  let text = lines.join("\n");
  if (text.length > MAX_CONTENT) text = `${text.slice(0, MAX_CONTENT - 1)}…`;
  return { text, content: text, username: ALERT_USERNAME, allowed_mentions: { parse: [] }, alert };
}

export function alertMail(alert: Alert, opts: { lookFurther?: string } = {}): { subject: string; text: string } {
  const reasonLine = clean(alert.reason, 120, "line");
  const subject = `[${ALERT_USERNAME}] ${alert.kind === "down" ? "DOWN" : "RECOVERED"} ${alert.environment}/${alert.check ? `${alert.check}:` : ""}${alert.customer}: ${reasonLine}`;
  const lines = [
    headline(alert),
    "",
    `customer:     ${alert.customer}`,
    `environment:  ${alert.environment}`,
    `${alert.kind === "down" ? "reason:      " : "was down:    "} ${clean(alert.reason, MAX_MAIL_REASON, "block")}`,
    ...(alert.kind === "recovered" && alert.downSince ? [`down since:   ${alert.downSince}`] : []),
    ...(alert.kind === "recovered" ? [`down for:     ${formatDuration(alert.durationSeconds ?? 0)}`] : []),
    `incident:     ${alert.incident}`,
    "",
    "Look further:",
    `  ${opts.lookFurther ?? lookFurtherCommand(alert)}`,
    "",
  ];
  return { subject, text: lines.join("\n") };
}
