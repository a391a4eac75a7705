// Building the page from data: text is always set as text (never parsed as HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/// A message area: errors from the API shown as their human text.
export function notice(kind, text) {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// one formatter for the page: `toLocaleString` per call builds one each time (slow for
// a table of a thousand rows)
const FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : FORMAT.format(d);
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/// The field errors of a problem document, by JSON pointer.
export function fieldErrors(err) {
  const out = new Map();
  for (const e of (err && err.errors) || []) {
    const list = out.get(e.pointer) || [];
    list.push(e.detail);
    out.set(e.pointer, list);
  }
  return out;
}

/// The field a JSON pointer concerns in `form` (elements marked `data-pointer`): the
/// pointer itself, else its nearest parent.
export function closestField(form, pointer) {
  const parts = pointer.split("/");
  while (parts.length > 1) {
    const at = form.querySelector(`[data-pointer="${CSS.escape(parts.join("/"))}"]`);
    if (at) return at;
    parts.pop();
  }
  return null;
}

/// A problem document's field errors, each next to the field it concerns (`box` takes
/// those that concern no field on the form). `cls` marks them (e.g. `live`).
export function showFieldErrors(form, box, err, cls = "") {
  for (const [pointer, list] of fieldErrors(err)) {
    const at = closestField(form, pointer);
    if (at) at.append(h("p", { class: `field-error ${cls}`.trim(), role: "alert" }, list.join("; ")));
    else box.append(notice("error", `${pointer}: ${list.join("; ")}`));
  }
}
