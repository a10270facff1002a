/**
 * HTML for the status pages, escaped by default: the `html` tag escapes every interpolated value
 * (text and quoted attribute values alike: & < > " ' all become entities); only a `Safe` value, made
 * by `html` itself or by an explicit `raw()`, goes in as it is. Pure.
 *
 * An attribute value must be quoted in the template (`href="${url}"`): an interpolation right after
 * `=` inside a tag throws, since escaping cannot make an unquoted value safe.
 */

/** A fragment of HTML that is already safe to insert. */
export class Safe {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

/** What a template takes: text (escaped), safe fragments (as they are), lists of either; nothing for null, undefined, false. */
export type Value = Safe | string | number | boolean | null | undefined | readonly Value[];

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text for an element's content or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** A fragment the caller vouches for (markup built here, never text from outside). */
export function raw(fragment: string): Safe {
  return new Safe(fragment);
}

function render(value: Value): string {
  if (value instanceof Safe) return value.html;
  if (value === null || value === undefined || value === false) return "";
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Safe {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    const inTag = out.lastIndexOf("<") > out.lastIndexOf(">");
    if (inTag && /=\s*$/.test(out)) throw new Error(`unquoted attribute value in an html template near: ${out.slice(-40)}`);
    out += render(value) + (strings[i + 1] ?? "");
  });
  return new Safe(out);
}

/** The URL when it is an absolute http(s) one (fit for an href), else undefined. */
export function httpUrl(text: string): string | undefined {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Text from a container's output made fit for a page: terminal escape sequences are dropped and other
 * control characters (tab and newline kept) shown as U+FFFD. Escaping is still the template's job.
 */
export function printable(text: string): string {
  return text
    .replace(/\r+(?=\n|$)/g, "")
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "")
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, "")
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "\ufffd");
}

/** An ISO time as `<time>`: "2025-03-01 12:00:05Z"; text that is not a time is shown as it is. */
export function time(iso: string): Safe {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return html`${iso}`;
  const d = new Date(ms).toISOString();
  return html`<time datetime="${d}">${d.slice(0, 10)} ${d.slice(11, 19)}Z</time>`;
}
