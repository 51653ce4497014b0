// Small DOM helpers: build elements without innerHTML (user text is never parsed as HTML).

/** `h("div", {class: "x", onclick: f}, child, "text")` → an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes (presentation attributes, not style: the CSP forbids it). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return el;
}

export const $ = (id) => document.getElementById(id);

export function pct(x, digits = 1) {
  return `${(100 * x).toFixed(digits)} %`;
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** Make a heading editable in place: click, type, Enter saves, Escape cancels. */
export function editableText(el, save) {
  el.addEventListener("click", () => {
    if (el.querySelector("input")) return;
    const old = el.textContent;
    const input = h("input", { value: old, class: "inline-edit", maxlength: "100" });
    let done = false;
    const finish = async (commit) => {
      if (done) return;
      done = true;
      const name = input.value.trim();
      el.textContent = old;
      if (commit && name && name !== old) {
        el.textContent = name;
        if ((await save(name)) === false) el.textContent = old;
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); finish(true); }
      if (event.key === "Escape") finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    el.textContent = "";
    el.append(input);
    input.focus();
    input.select();
  });
}
