// The back-office screens of any keel system, generic over its generated metadata
// (`/assets/gen/backoffice.js`: entities, fields with the spec's constraints, the
// operations) and its generated client (`/assets/gen/client.js`). Nothing here names
// an entity: a new CRUD entity in the spec gets its list, create, edit and delete
// screens from the metadata alone.
//
// Screens (in the URL's fragment): `#/<Entity>` the list with paging, `#/<Entity>/new`,
// `#/<Entity>/<id>` edit and delete. The spec's constraints are HTML attributes of the
// form (checked before sending, shown next to each field); what the server still refuses
// (`BAD_USER_INPUT` with `fieldViolations`) is shown next to the field it names.
// @ts-check

import * as client from "/assets/gen/client.js";
import { entities, money } from "/assets/gen/backoffice.js";

/** @typedef {import("/assets/gen/backoffice.js").EntityMeta} EntityMeta */
/** @typedef {import("/assets/gen/backoffice.js").FieldMeta} FieldMeta */

const ROLE = "back-office";
const UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const nav = /** @type {HTMLElement} */ (document.getElementById("entities"));
const who = /** @type {HTMLElement} */ (document.getElementById("who"));

/** Cursors of the pages before the current one, per entity list. */
/** @type {Map<string, (string | null)[]>} */
const pages = new Map();

/**
 * An element with attributes and children.
 * @param {string} tag
 * @param {Record<string, string | boolean | number | null | undefined>} [attrs]
 * @param {(Node | string | null | undefined | false)[]} [children]
 * @returns {HTMLElement}
 */
function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

/**
 * Shows a screen: its nodes, and after its heading the message left for it, if any.
 * @param {(Node | string)[]} nodes
 */
function show(...nodes) {
  if (flash) {
    nodes.splice(1, 0, h("p", { class: "notice good", role: "status", id: "flash" }, [flash]));
    flash = "";
  }
  main.replaceChildren(...nodes);
}

/** A message for the next screen shown ("Product saved."). */
let flash = "";

/**
 * @param {unknown} e
 * @returns {string}
 */
function explain(e) {
  if (e instanceof client.ApiError) {
    switch (e.code) {
      case "CONFLICT":
        return `It changed meanwhile: reload and try again. (${e.message})`;
      case "FORBIDDEN":
        return "This account may not do that (it needs the back-office role).";
      case "UNAUTHENTICATED":
        return "Your session ended: log in again.";
      case "UNAVAILABLE":
        return `The service is unavailable; try again in a moment. (${e.message})`;
      default:
        return `${e.message} (${e.code})`;
    }
  }
  return e instanceof Error ? e.message : String(e);
}

/** @param {number} minor */
function formatMoney(minor) {
  const value = minor / 10 ** money.minorUnits;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: money.currency }).format(value);
  } catch {
    return `${value} ${money.currency}`;
  }
}

/**
 * @param {FieldMeta} f
 * @param {unknown} v
 * @returns {string}
 */
function display(f, v) {
  if (v === null || v === undefined) return "—";
  if (f.type === "money" && typeof v === "number") return formatMoney(v);
  if (f.type === "timestamp" && typeof v === "string") return new Date(v).toLocaleString();
  if (f.type === "bool") return v ? "yes" : "no";
  return String(v);
}

/**
 * What the spec allows, in words.
 * @param {FieldMeta} f
 * @returns {string}
 */
function hint(f) {
  const parts = [];
  if (f.minLen !== undefined && f.maxLen !== undefined) parts.push(`${f.minLen} to ${f.maxLen} characters`);
  else if (f.maxLen !== undefined) parts.push(`at most ${f.maxLen} characters`);
  else if (f.minLen !== undefined) parts.push(`at least ${f.minLen} characters`);
  if (f.min !== undefined && f.max !== undefined) parts.push(`from ${f.min} to ${f.max}`);
  else if (f.min !== undefined) parts.push(`at least ${f.min}`);
  else if (f.max !== undefined) parts.push(`at most ${f.max}`);
  if (f.type === "money") {
    parts.push(money.minorUnits === 0 ? `in ${money.currency}` : `in minor units of ${money.currency} (1/${10 ** money.minorUnits})`);
  }
  if (f.type === "uuid" || f.type === "ref") parts.push(`a UUID${f.ref ? ` of a ${f.ref}` : ""}`);
  if (f.optional) parts.push("optional");
  return parts.join("; ");
}

/** @param {string} name */
function entityByName(name) {
  return entities.find((e) => e.name === name);
}

/** The client function named `field`. */
/** @param {string} field */
function op(field) {
  const f = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (client))[field];
  if (typeof f !== "function") throw new Error(`client.js has no function ${field}: regenerate`);
  return /** @type {(...args: unknown[]) => Promise<any>} */ (f);
}

/** The selection of every scalar field of `e`. */
/** @param {EntityMeta} e */
function selection(e) {
  return `{ ${e.fields.map((f) => f.name).join(" ")} }`;
}

// ------------------------------------------------------------------ session

function renderWho() {
  const s = client.session();
  if (!s) {
    who.replaceChildren();
    return;
  }
  const out = h("button", { type: "button", class: "secondary", id: "logout" }, ["Log out"]);
  out.addEventListener("click", async () => {
    try {
      await client.logout();
    } catch {
      // The session is forgotten here either way.
    }
    route();
  });
  who.replaceChildren(h("span", {}, [s.roles.includes(ROLE) ? "Back-office" : "No back-office role"]), out);
}

function loginScreen(message = "") {
  const email = h("input", { id: "login-email", name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, [message]);
  const form = h("form", { class: "entity", id: "login", novalidate: true }, [
    h("h2", {}, ["Log in to the back-office"]),
    h("div", { class: "field" }, [h("label", { for: "login-email" }, ["Email"]), email]),
    h("div", { class: "field" }, [h("label", { for: "login-password" }, ["Password"]), password]),
    error,
    h("div", { class: "actions" }, [h("button", { type: "submit" }, ["Log in"])]),
  ]);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    try {
      await client.login({
        email: /** @type {HTMLInputElement} */ (email).value,
        password: /** @type {HTMLInputElement} */ (password).value,
      });
      route();
    } catch (e) {
      error.textContent = e instanceof client.ApiError && e.code === "UNAUTHENTICATED" ? "Wrong email or password." : explain(e);
    }
  });
  show(form);
  email.focus();
}

// ------------------------------------------------------------------ screens

function renderNav() {
  nav.replaceChildren(
    ...entities.map((e) => h("a", { href: `#/${e.name}`, "data-entity": e.name }, [e.plural])),
    h("a", { href: "/graphiql" }, ["GraphQL console"]),
    h("a", { href: "/" }, ["Storefront"]),
  );
}

/**
 * The list of `e`, one page.
 * @param {EntityMeta} e
 */
async function listScreen(e) {
  const list = e.operations.list;
  const heading = h("h2", {}, [e.plural]);
  if (!list) {
    show(heading, h("p", {}, ["The spec exposes no list of it."]));
    return;
  }
  const stack = pages.get(e.name) ?? [null];
  pages.set(e.name, stack);
  const after = stack[stack.length - 1];
  const first = list.pageSize?.default ?? 20;
  main.replaceChildren(heading, h("p", {}, ["Loading…"]));
  let page;
  try {
    page = await op(list.field)({ first, after }, `{ nodes ${selection(e)} pageInfo { endCursor hasNextPage } }`);
  } catch (err) {
    show(heading, h("p", { class: "notice bad", role: "alert" }, [explain(err)]));
    return;
  }
  const columns = e.fields.filter((f) => f.type !== "text" && f.name !== "id");
  const label = columns.find((f) => f.type === "string") ?? columns[0];
  const rows = /** @type {Record<string, unknown>[]} */ (page.nodes).map((n) =>
    h("tr", {}, [
      ...columns.map((f) => {
        const text = display(f, n[f.name]);
        const cell = f === label && e.operations.get ? h("a", { href: `#/${e.name}/${n.id}` }, [text]) : text;
        return h("td", { class: f.type === "money" || f.type === "int" ? "num" : null }, [cell]);
      }),
    ]),
  );
  const table = h("div", { class: "table-wrap" }, [
    h("table", { id: "list" }, [
      h("caption", { class: "visually-hidden" }, [`${e.plural}, page ${stack.length}`]),
      h("thead", {}, [h("tr", {}, columns.map((f) => h("th", { scope: "col", class: f.type === "money" || f.type === "int" ? "num" : null }, [f.label])))]),
      h("tbody", {}, rows),
    ]),
  ]);
  const prev = h("button", { type: "button", class: "secondary", id: "prev-page", disabled: stack.length === 1 }, ["Previous page"]);
  prev.addEventListener("click", () => {
    stack.pop();
    listScreen(e);
  });
  const next = h("button", { type: "button", class: "secondary", id: "next-page", disabled: !page.pageInfo.hasNextPage }, ["Next page"]);
  next.addEventListener("click", () => {
    stack.push(page.pageInfo.endCursor);
    listScreen(e);
  });
  const create = e.operations.create ? h("a", { class: "button", href: `#/${e.name}/new`, id: "create" }, [`New ${e.label.toLowerCase()}`]) : null;
  show(
    heading,
    h("div", { class: "actions" }, [create]),
    rows.length ? table : h("p", {}, [`No ${e.plural.toLowerCase()} yet.`]),
    h("div", { class: "actions" }, [prev, h("span", {}, [`Page ${stack.length}`]), next]),
  );
}

/**
 * The input control of a writable field.
 * @param {FieldMeta} f
 * @param {unknown} value
 */
function control(f, value) {
  const id = `f-${f.name}`;
  const common = { id, name: f.name, "aria-describedby": `${id}-hint ${id}-error`, required: !f.optional && f.type !== "bool" };
  /** @type {HTMLElement} */
  let el;
  if (f.oneOf && f.oneOf.length) {
    el = h("select", common, [f.optional ? h("option", { value: "" }, ["—"]) : null, ...f.oneOf.map((o) => h("option", { value: o, selected: value === o }, [o]))]);
  } else if (f.type === "text") {
    el = h("textarea", { ...common, rows: 4, minlength: f.minLen, maxlength: f.maxLen }, [typeof value === "string" ? value : ""]);
  } else if (f.type === "bool") {
    el = h("input", { ...common, type: "checkbox", checked: value === true });
  } else if (f.type === "int" || f.type === "money") {
    el = h("input", { ...common, type: "number", step: 1, inputmode: "numeric", min: f.min, max: f.max, value: typeof value === "number" ? value : null });
  } else if (f.type === "timestamp") {
    el = h("input", { ...common, type: "datetime-local", step: 1, value: typeof value === "string" ? value.replace(/Z$/, "").slice(0, 19) : null });
  } else {
    el = h("input", {
      ...common,
      type: f.type === "email" ? "email" : "text",
      minlength: f.minLen,
      maxlength: f.maxLen,
      pattern: f.type === "uuid" || f.type === "ref" ? UUID : null,
      value: typeof value === "string" ? value : null,
    });
  }
  if (value === undefined && f.default !== undefined) {
    if (el instanceof HTMLInputElement && el.type === "checkbox") el.checked = f.default === true;
    else /** @type {HTMLInputElement} */ (el).value = String(f.default);
  }
  return el;
}

/**
 * The value of a control as the input wants it; undefined when left empty.
 * @param {FieldMeta} f
 * @param {HTMLInputElement} el
 */
function read(f, el) {
  if (f.type === "bool") return el.checked;
  const raw = el.value;
  if (raw === "") return undefined;
  if (f.type === "int" || f.type === "money") return Number(raw);
  if (f.type === "timestamp") return new Date(`${raw}Z`).toISOString().replace(/\.000Z$/, "Z");
  return raw;
}

/**
 * Shows `message` at the field `name` of `form`; false when there is no such field.
 * @param {HTMLFormElement} form
 * @param {string} name
 * @param {string} message
 */
function fieldError(form, name, message) {
  const el = form.querySelector(`[name="${CSS.escape(name)}"]`);
  const out = form.querySelector(`#f-${CSS.escape(name)}-error`);
  if (!el || !out) return false;
  el.setAttribute("aria-invalid", "true");
  out.textContent = message;
  out.removeAttribute("hidden");
  return true;
}

/** @param {HTMLFormElement} form */
function clearErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const out of form.querySelectorAll(".field .error")) {
    out.textContent = "";
    out.setAttribute("hidden", "");
  }
}

/**
 * The create form (`item` undefined) or the edit form of `item`.
 * @param {EntityMeta} e
 * @param {Record<string, unknown> | undefined} item
 */
function formScreen(e, item) {
  const editing = item !== undefined;
  const write = editing ? e.operations.update : e.operations.create;
  const writable = e.fields.filter((f) => !f.readonly);
  const status = h("div", { id: "form-status", role: "status" });
  const fields = writable.map((f) =>
    h("div", { class: "field", "data-field": f.name }, [
      h("label", { for: `f-${f.name}` }, [f.label]),
      control(f, item?.[f.name]),
      h("span", { class: "hint", id: `f-${f.name}-hint` }, [hint(f)]),
      h("p", { class: "error", id: `f-${f.name}-error`, hidden: true }),
    ]),
  );
  const readonly = editing
    ? h(
        "dl",
        { class: "readonly" },
        e.fields.filter((f) => f.readonly).flatMap((f) => [h("dt", {}, [f.label]), h("dd", { "data-field": f.name }, [display(f, item?.[f.name])])]),
      )
    : null;
  const submit = h("button", { type: "submit", id: "save" }, [editing ? "Save" : `Create ${e.label.toLowerCase()}`]);
  const form = /** @type {HTMLFormElement} */ (
    h("form", { class: "entity", id: "entity-form", novalidate: true }, [...fields, status, h("div", { class: "actions" }, [submit, h("a", { href: `#/${e.name}` }, ["Back to the list"])])])
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    status.replaceChildren();
    let firstBad = null;
    for (const f of writable) {
      const el = /** @type {HTMLInputElement} */ (form.elements.namedItem(f.name));
      if (el && !el.checkValidity()) {
        fieldError(form, f.name, el.validationMessage);
        firstBad ??= el;
      }
    }
    if (firstBad) {
      firstBad.focus();
      return;
    }
    /** @type {Record<string, unknown>} */
    const input = editing ? { id: item?.id } : {};
    for (const f of writable) {
      const v = read(f, /** @type {HTMLInputElement} */ (form.elements.namedItem(f.name)));
      if (v !== undefined) input[f.name] = v;
      else if (editing) input[f.name] = null;
    }
    if (!write) return;
    submit.setAttribute("disabled", "");
    try {
      const saved = await op(write.field)(input, selection(e));
      pages.delete(e.name);
      location.hash = `#/${e.name}/${saved.id}`;
      flash = `${e.label} saved.`;
      if (editing) route();
    } catch (err) {
      submit.removeAttribute("disabled");
      if (err instanceof client.ApiError && err.code === "BAD_USER_INPUT" && err.fieldViolations.length) {
        const rest = err.fieldViolations.filter((v) => !fieldError(form, v.field.replace(/^input\./, ""), v.description));
        status.replaceChildren(h("p", { class: "notice bad", role: "alert" }, [rest.length ? rest.map((v) => `${v.field}: ${v.description}`).join("; ") : "Some fields are not valid: see above."]));
        /** @type {HTMLElement | null} */ (form.querySelector("[aria-invalid=true]"))?.focus();
      } else {
        status.replaceChildren(h("p", { class: "notice bad", role: "alert" }, [explain(err)]));
      }
    }
  });
  const parts = [h("h2", {}, [editing ? `Edit ${e.label.toLowerCase()}` : `New ${e.label.toLowerCase()}`])];
  if (readonly) parts.push(readonly);
  parts.push(write ? form : h("p", {}, ["The spec exposes no way to change it."]));
  if (editing && e.operations.delete) parts.push(deleteBox(e, item));
  show(...parts);
}

/**
 * Delete, with a confirmation in the page.
 * @param {EntityMeta} e
 * @param {Record<string, unknown> | undefined} item
 */
function deleteBox(e, item) {
  const del = e.operations.delete;
  const box = h("div", { class: "actions", id: "delete-box" });
  const ask = h("button", { type: "button", class: "danger", id: "delete" }, [`Delete ${e.label.toLowerCase()}`]);
  ask.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "danger", id: "confirm-delete" }, ["Yes, delete it"]);
    const no = h("button", { type: "button", class: "secondary", id: "cancel-delete" }, ["Cancel"]);
    const out = h("p", { class: "error", role: "alert" });
    yes.addEventListener("click", async () => {
      if (!del) return;
      try {
        await op(del.field)({ id: item?.id }, "{ id }");
        pages.delete(e.name);
        flash = `${e.label} deleted.`;
        location.hash = `#/${e.name}`;
      } catch (err) {
        out.textContent = explain(err);
      }
    });
    no.addEventListener("click", () => box.replaceChildren(ask));
    box.replaceChildren(h("span", {}, [`Delete this ${e.label.toLowerCase()} for good?`]), yes, no, out);
    yes.focus();
  });
  box.append(ask);
  return box;
}

/**
 * @param {EntityMeta} e
 * @param {string} id
 */
async function editScreen(e, id) {
  const get = e.operations.get;
  if (!get) {
    show(h("p", {}, ["The spec exposes no get of it."]));
    return;
  }
  try {
    const item = await op(get.field)({ id }, selection(e));
    if (!item) {
      show(h("p", { class: "notice bad", role: "alert" }, [`No such ${e.label.toLowerCase()} (it may have been deleted).`]), h("a", { href: `#/${e.name}` }, ["Back to the list"]));
      return;
    }
    formScreen(e, item);
  } catch (err) {
    show(h("p", { class: "notice bad", role: "alert" }, [explain(err)]));
  }
}

async function route() {
  renderWho();
  const s = client.session();
  if (!s) {
    loginScreen();
    return;
  }
  if (!s.roles.includes(ROLE)) {
    show(h("p", { class: "notice bad", role: "alert" }, ["This account has no back-office role. Log out and log in with one that has."]));
    return;
  }
  const [name, id] = location.hash.replace(/^#\/?/, "").split("/");
  for (const a of nav.querySelectorAll("a[data-entity]")) {
    if (a.getAttribute("data-entity") === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const e = name ? entityByName(decodeURIComponent(name)) : entities[0];
  if (!e) {
    show(h("p", {}, [entities.length ? "No such screen." : "The spec has no entity with back-office use cases."]));
    return;
  }
  if (id === "new") formScreen(e, undefined);
  else if (id) await editScreen(e, decodeURIComponent(id));
  else await listScreen(e);
  if (!main.contains(document.activeElement)) main.focus();
}

renderNav();
window.addEventListener("hashchange", route);
client.onSessionChange(() => renderWho());
client
  .restoreSession()
  .catch(() => null)
  .then(route);
