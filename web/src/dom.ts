// Small DOM helpers the page's modules share.

/** The element with `id` (the page's structure is in index.html; a missing one is a bug there). */
export function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`The page is missing #${id}.`);
  return found as T;
}

/** Output boxes scroll when long; as focusable named regions, keyboard users can scroll them too. */
export function makeScrollRegion(pre: HTMLElement, name: string): void {
  pre.tabIndex = 0;
  pre.setAttribute("role", "region");
  pre.setAttribute("aria-label", name);
}
