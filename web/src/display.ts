// Rich outputs of a step (`display`: Jupyter MIME bundles) drawn as DOM nodes, and the allow-list
// HTML sanitizer they go through. A cell's HTML is untrusted (any code can print any markup), so it
// never reaches innerHTML of the live page: it is parsed inert by DOMParser and only allowed
// elements and attributes are copied, as new nodes, into the page.

/** One Jupyter MIME bundle of a step's `display` list. */
export interface DisplayBundle {
  data: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

/** Elements kept (their allowed attributes below); anything else is unwrapped to its children. */
const ALLOWED_TAGS = new Set([
  "a",
  "abbr",
  "b",
  "blockquote",
  "br",
  "caption",
  "code",
  "col",
  "colgroup",
  "dd",
  "del",
  "div",
  "dl",
  "dt",
  "em",
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "hr",
  "i",
  "img",
  "ins",
  "kbd",
  "li",
  "ol",
  "p",
  "pre",
  "q",
  "s",
  "samp",
  "small",
  "span",
  "strong",
  "sub",
  "sup",
  "table",
  "tbody",
  "td",
  "tfoot",
  "th",
  "thead",
  "tr",
  "u",
  "ul",
]);
/** Elements dropped with everything inside them (code, styles, embedded documents, forms). */
const DROPPED_TAGS = new Set([
  "script",
  "style",
  "iframe",
  "object",
  "embed",
  "frame",
  "frameset",
  "applet",
  "link",
  "meta",
  "base",
  "template",
  "noscript",
  "svg",
  "math",
  "form",
  "input",
  "button",
  "select",
  "textarea",
  "video",
  "audio",
  "source",
  "track",
  "canvas",
  "title",
  "head",
]);
const ALLOWED_ATTRS: Record<string, Set<string>> = {
  "*": new Set(["title", "lang", "dir"]),
  a: new Set(["href"]),
  img: new Set(["src", "alt", "width", "height"]),
  td: new Set(["colspan", "rowspan", "align"]),
  th: new Set(["colspan", "rowspan", "align", "scope"]),
  col: new Set(["span"]),
  colgroup: new Set(["span"]),
  ol: new Set(["start", "reversed"]),
};

/** Links may go to http(s) and mailto only; images only to data:image/png|jpeg|gif|webp (no fetches). */
function safeUrl(tag: string, attr: string, value: string): string | undefined {
  const trimmed = value.trim();
  if (tag === "a" && attr === "href") return /^(https?:|mailto:|#)/i.test(trimmed) ? trimmed : undefined;
  if (tag === "img" && attr === "src") {
    return /^data:image\/(png|jpeg|gif|webp);base64,[a-z0-9+/=\s]*$/i.test(trimmed) ? trimmed : undefined;
  }
  return trimmed;
}

function cleanNode(node: Node, into: Node, doc: Document): void {
  for (const child of [...node.childNodes]) {
    if (child.nodeType === Node.TEXT_NODE) {
      into.appendChild(doc.createTextNode(child.textContent ?? ""));
      continue;
    }
    if (child.nodeType !== Node.ELEMENT_NODE) continue; // comments, processing instructions
    const source = child as Element;
    const tag = source.localName.toLowerCase();
    if (DROPPED_TAGS.has(tag)) continue;
    if (!ALLOWED_TAGS.has(tag)) {
      cleanNode(source, into, doc); // unknown wrapper: keep its text and allowed children
      continue;
    }
    const copy = doc.createElement(tag);
    for (const attr of [...source.attributes]) {
      const name = attr.name.toLowerCase();
      // Only listed attributes: no on* handlers, no style, no srcset, no formaction...
      if (!(ALLOWED_ATTRS["*"]?.has(name) || ALLOWED_ATTRS[tag]?.has(name))) continue;
      const value = safeUrl(tag, name, attr.value);
      if (value !== undefined) copy.setAttribute(name, value);
    }
    // An image without an allowed source would only show a broken-image icon.
    if (tag === "img" && !copy.hasAttribute("src")) continue;
    if (tag === "a") {
      copy.setAttribute("rel", "noopener noreferrer nofollow");
      copy.setAttribute("target", "_blank");
    }
    cleanNode(source, copy, doc);
    into.appendChild(copy);
  }
}

/**
 * Untrusted HTML as a fragment of new, allowed nodes only. DOMParser builds an inert document
 * (scripts do not run, images do not load), and nothing of it is moved into the page as is.
 *
 * @example sanitizeHtml('<b onclick="x()">hi</b><script>x()</script>') // <b>hi</b>
 */
export function sanitizeHtml(html: string, doc: Document = document): DocumentFragment {
  const parsed = new DOMParser().parseFromString(html, "text/html");
  const fragment = doc.createDocumentFragment();
  cleanNode(parsed.body, fragment, doc);
  return fragment;
}

/** The MIME types drawn, richest first (Jupyter's order); one is drawn per bundle. */
const PREFERRED = ["image/png", "image/jpeg", "image/svg+xml", "text/html", "text/markdown", "text/plain"];

function base64OfUtf8(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** One bundle as a DOM node (`undefined` when it has no type the page can draw). */
export function renderBundle(bundle: DisplayBundle, label: string): HTMLElement | undefined {
  const data = bundle.data ?? {};
  const mime = PREFERRED.find((type) => typeof data[type] === "string");
  if (mime === undefined) return undefined;
  const value = data[mime] as string;
  const wrap = document.createElement("div");
  wrap.className = "display-item";
  wrap.dataset.mime = mime;
  const alt = typeof data["text/plain"] === "string" ? (data["text/plain"] as string) : label;
  if (mime === "image/png" || mime === "image/jpeg") {
    const img = document.createElement("img");
    img.src = `data:${mime};base64,${value.replace(/\s+/g, "")}`;
    img.alt = alt;
    wrap.append(img);
  } else if (mime === "image/svg+xml") {
    // As an image, never inline: an <img> SVG runs no script and loads nothing.
    const img = document.createElement("img");
    img.src = `data:image/svg+xml;base64,${base64OfUtf8(value)}`;
    img.alt = alt;
    wrap.append(img);
  } else if (mime === "text/html") {
    const html = document.createElement("div");
    html.className = "display-html";
    html.append(sanitizeHtml(value));
    wrap.append(html);
  } else {
    // Markdown is shown as its source text (no renderer shipped); plain text as is.
    const pre = document.createElement("pre");
    pre.className = "out display-text";
    pre.textContent = value;
    wrap.append(pre);
  }
  return wrap;
}

/** Fills `container` with the bundles (hidden when there are none). */
export function renderDisplay(
  container: HTMLElement,
  bundles: readonly DisplayBundle[] | undefined,
  label: string,
): void {
  const nodes = (bundles ?? [])
    .map((bundle, i) => renderBundle(bundle, `${label} output ${i + 1}`))
    .filter((node): node is HTMLElement => node !== undefined);
  container.replaceChildren(...nodes);
  container.hidden = nodes.length === 0;
}
