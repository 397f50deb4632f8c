// The shop's storefront: plain ES modules on the client generated from the spec
// (`/assets/gen/client.js`), no framework, no build step. Screens live in the URL's
// fragment: `#/` products, `#/product/<id>`, `#/cart`, `#/order/<id>`, `#/orders`,
// `#/profile`, `#/login`, `#/register`.
//
// The cart's id is made here (a random UUID) and kept in localStorage per customer: a
// cart becomes its first user's, so another customer on this browser gets another one.
// @ts-check

import * as api from "/assets/gen/client.js";

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const account = /** @type {HTMLElement} */ (document.getElementById("account"));
const PAGE = 12;

/** Cursors of the product pages before the current one. */
/** @type {(string | null)[]} */
let productPages = [null];
/** @type {(string | null)[]} */
let orderPages = [null];
/** A message for the next screen. */
let flash = { text: "", good: true };
/** Where to go after logging in. */
let afterLogin = "#/";

// ------------------------------------------------------------------ helpers

/**
 * @param {string} tag
 * @param {Record<string, string | number | boolean | null | undefined>} [attrs]
 * @param {(Node | string | null | undefined | false)[]} [children]
 */
function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

/**
 * Runs `action` with the page marked busy (`aria-busy` on main: assistive technology
 * waits for the new content, and so do the browser tests).
 * @param {() => Promise<void> | void} action
 */
async function busy(action) {
  main.setAttribute("aria-busy", "true");
  try {
    await action();
  } finally {
    main.removeAttribute("aria-busy");
  }
}

/**
 * Submits `form` through `action`, busy meanwhile.
 * @param {HTMLFormElement} form
 * @param {() => Promise<void>} action
 */
function onSubmit(form, action) {
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(action);
  });
}

/**
 * A button that runs `action` (disabled and busy while it runs).
 * @param {string} label
 * @param {Record<string, string | boolean | null | undefined>} attrs
 * @param {() => Promise<void> | void} action
 */
function button(label, attrs, action) {
  const b = /** @type {HTMLButtonElement} */ (h("button", { type: "button", ...attrs }, [label]));
  b.addEventListener("click", () =>
    busy(async () => {
      b.disabled = true;
      try {
        await action();
      } finally {
        b.disabled = false;
      }
    }),
  );
  return b;
}

/**
 * Shows a screen: its title (focused, for keyboards and screen readers) and content.
 * @param {string} title
 * @param {(Node | string | null | false)[]} content
 */
function screen(title, ...content) {
  const heading = h("h1", { tabindex: -1 }, [title]);
  const parts = [heading];
  if (flash.text) {
    parts.push(h("p", { class: `notice ${flash.good ? "good" : "bad"}`, role: "status", id: "flash" }, [flash.text]));
    flash = { text: "", good: true };
  }
  main.replaceChildren(...parts, ...content.filter((c) => c !== null && c !== false));
  document.title = `${title} · The shop`;
  heading.focus();
}

/** @param {number} minor */
function price(minor) {
  const value = minor / 10 ** api.money.minorUnits;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: api.money.currency }).format(value);
  } catch {
    return `${value} ${api.money.currency}`;
  }
}

/**
 * A notice for an error, with what to do about it.
 * @param {unknown} e
 */
function problem(e) {
  if (e instanceof api.ApiError) {
    if (e.code === "CONFLICT") {
      return h("div", { class: "notice bad", role: "alert" }, [
        "Something changed meanwhile. ",
        button("Reload", { class: "secondary", id: "reload" }, () => route()),
      ]);
    }
    if (e.code === "UNAUTHENTICATED") {
      return h("div", { class: "notice bad", role: "alert" }, ["Your session ended. ", h("a", { href: "#/login" }, ["Log in again"])]);
    }
    const text = {
      FORBIDDEN: "That is not yours.",
      NOT_FOUND: "It does not exist (any more).",
      UNAVAILABLE: "The shop is busy or unreachable; try again in a moment.",
      FAILED_PRECONDITION: e.message,
      BAD_USER_INPUT: e.message,
    }[e.code];
    return h("p", { class: "notice bad", role: "alert" }, [text ?? `Something went wrong (${e.code}).`]);
  }
  return h("p", { class: "notice bad", role: "alert" }, [e instanceof Error ? e.message : String(e)]);
}

/**
 * Shows the violations of `e` at the fields of `form` (named by GraphQL name); true when
 * it was such an error.
 * @param {HTMLFormElement} form
 * @param {unknown} e
 */
function showViolations(form, e) {
  if (!(e instanceof api.ApiError) || e.code !== "BAD_USER_INPUT") return false;
  let shown = false;
  for (const v of e.fieldViolations) {
    const name = v.field.replace(/^input\./, "");
    shown = fieldError(form, name, v.description) || shown;
  }
  /** @type {HTMLElement | null} */ (form.querySelector("[aria-invalid=true]"))?.focus();
  return shown;
}

/**
 * @param {HTMLFormElement} form
 * @param {string} name
 * @param {string} message
 */
function fieldError(form, name, message) {
  const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
  const out = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
  if (!input || !out) return false;
  input.setAttribute("aria-invalid", "true");
  out.textContent = message;
  return true;
}

/** @param {HTMLFormElement} form */
function clearErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
  form.querySelector(".form-error")?.replaceChildren();
}

/**
 * Checks the HTML constraints of `form`; shows each problem at its field.
 * @param {HTMLFormElement} form
 */
function valid(form) {
  let ok = true;
  for (const el of /** @type {NodeListOf<HTMLInputElement>} */ (form.querySelectorAll("input[name]"))) {
    if (!el.checkValidity()) {
      fieldError(form, el.name, el.validationMessage);
      if (ok) el.focus();
      ok = false;
    }
  }
  return ok;
}

/**
 * A labelled input with its error line.
 * @param {string} name
 * @param {string} label
 * @param {Record<string, string | number | boolean | null | undefined>} attrs
 */
function field(name, label, attrs) {
  const id = `${attrs.idPrefix ?? "f"}-${name}`;
  const { idPrefix, ...rest } = attrs;
  void idPrefix;
  return h("div", { class: "field" }, [
    h("label", { for: id }, [label]),
    h("input", { id, name, "aria-describedby": `${id}-error`, ...rest }),
    h("p", { class: "error", id: `${id}-error`, "data-error-for": name, "aria-live": "polite" }),
  ]);
}

/** A random (version 4) UUID, also where `crypto.randomUUID` is missing (plain http). */
function uuid() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((n) => n.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// ------------------------------------------------------------------ cart

/** @returns {string | null} */
function cartKey() {
  const s = api.session();
  return s ? `shop.cart.${s.customerId}` : null;
}

/** This customer's cart id, made on first use. */
function cartId() {
  const key = cartKey();
  if (!key) throw new api.ApiError("log in first", "UNAUTHENTICATED");
  let id = localStorage.getItem(key);
  if (!id) {
    id = uuid();
    localStorage.setItem(key, id);
  }
  return id;
}

/** A fresh cart (the old one is someone else's or gone). */
function newCart() {
  const key = cartKey();
  if (key) localStorage.removeItem(key);
  return cartId();
}

const CART = "{ id version items { productId quantity product { id name price } } }";

/**
 * The cart, once the read side shows `version` (commands answer before it does).
 * @param {number} [version]
 * @returns {Promise<api.Cart | null>}
 */
async function loadCart(version = 0) {
  let cart = null;
  for (let i = 0; i < 40; i++) {
    try {
      cart = await api.viewCart({ cartId: cartId() }, CART);
    } catch (e) {
      if (e instanceof api.ApiError && e.code === "FORBIDDEN") {
        newCart();
        return null;
      }
      throw e;
    }
    if ((cart?.version ?? 0) >= version) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  updateCartCount(cart);
  return cart;
}

/** @param {api.Cart | null} cart */
function updateCartCount(cart) {
  const n = cart?.items.reduce((sum, i) => sum + i.quantity, 0) ?? 0;
  const link = document.getElementById("nav-cart");
  if (link) link.textContent = n ? `Cart (${n})` : "Cart";
}

/**
 * Adds `quantity` of a product; asks to log in first.
 * @param {string} productId
 * @param {number} quantity
 */
async function addToCart(productId, quantity) {
  if (!api.session()) {
    afterLogin = location.hash || "#/";
    flash = { text: "Log in to fill your cart.", good: false };
    location.hash = "#/login";
    return;
  }
  const existing = (await loadCart())?.items.find((i) => i.productId === productId);
  const result = existing
    ? await api.changeProductQuantity({ cartId: cartId(), productId, quantity: Math.min(99, existing.quantity + quantity) })
    : await api.addProduct({ cartId: cartId(), productId, quantity });
  await loadCart(result.version);
}

// ------------------------------------------------------------------ screens

async function productsScreen() {
  const after = productPages[productPages.length - 1];
  let page;
  try {
    page = await api.viewProducts({ first: PAGE, after }, "{ nodes { id name description price } pageInfo { endCursor hasNextPage } }");
  } catch (e) {
    screen("Products", problem(e));
    return;
  }
  const status = h("p", { role: "status", id: "cart-status" });
  const items = page.nodes.map((p) =>
    h("li", { class: "card", "data-product": p.name }, [
      h("h2", {}, [h("a", { href: `#/product/${p.id}` }, [p.name])]),
      p.description ? h("p", {}, [p.description.length > 120 ? `${p.description.slice(0, 117)}…` : p.description]) : null,
      h("span", { class: "price" }, [price(p.price)]),
      button("Add to cart", { "aria-label": `Add ${p.name} to the cart`, class: "add" }, async () => {
        try {
          await addToCart(p.id, 1);
          status.textContent = `${p.name} is in your cart.`;
        } catch (e) {
          status.replaceChildren(problem(e));
        }
      }),
    ]),
  );
  const prev = button("Previous page", { class: "secondary", id: "prev-page", disabled: productPages.length === 1 }, () => {
    productPages.pop();
    return productsScreen();
  });
  const next = button("Next page", { class: "secondary", id: "next-page", disabled: !page.pageInfo.hasNextPage }, () => {
    productPages.push(page.pageInfo.endCursor);
    return productsScreen();
  });
  screen(
    "Products",
    status,
    items.length ? h("ul", { class: "grid", id: "products" }, items) : h("p", {}, ["Nothing for sale yet."]),
    h("nav", { class: "pager", "aria-label": "Pages" }, [prev, h("span", {}, [`Page ${productPages.length}`]), next]),
  );
}

/** @param {string} id */
async function productScreen(id) {
  let p;
  try {
    p = await api.getProduct({ id });
  } catch (e) {
    screen("Product", problem(e));
    return;
  }
  if (!p) {
    screen("Product", h("p", { class: "notice bad", role: "alert" }, ["This product is no longer sold."]), h("a", { href: "#/" }, ["Back to the products"]));
    return;
  }
  const product = p;
  const status = h("p", { role: "status", id: "cart-status" });
  const form = /** @type {HTMLFormElement} */ (
    h("form", { class: "form", novalidate: true }, [
      field("quantity", "Quantity", { type: "number", min: 1, max: 99, step: 1, value: 1, required: true, inputmode: "numeric", class: "qty" }),
      h("div", { class: "actions" }, [h("button", { type: "submit", id: "add" }, ["Add to cart"])]),
    ])
  );
  onSubmit(form, async () => {
    clearErrors(form);
    if (!valid(form)) return;
    const quantity = Number(/** @type {HTMLInputElement} */ (form.elements.namedItem("quantity")).value);
    try {
      await addToCart(product.id, quantity);
      status.replaceChildren(`${product.name} is in your cart. `, h("a", { href: "#/cart" }, ["See the cart"]));
    } catch (e) {
      if (!showViolations(form, e)) status.replaceChildren(problem(e));
    }
  });
  screen(
    product.name,
    h("p", { class: "price" }, [price(product.price)]),
    product.description ? h("p", {}, [product.description]) : null,
    form,
    status,
    h("p", {}, [h("a", { href: "#/" }, ["Back to the products"])]),
  );
}

async function cartScreen() {
  if (!api.session()) {
    afterLogin = "#/cart";
    screen("Cart", h("p", {}, [h("a", { href: "#/login" }, ["Log in"]), " to see your cart."]));
    return;
  }
  let cart;
  try {
    cart = await loadCart();
  } catch (e) {
    screen("Cart", problem(e));
    return;
  }
  const status = h("div", { role: "status", id: "cart-status" });
  /** @param {{ version: number }} result */
  const after = async (result) => {
    await loadCart(result.version);
    await cartScreen();
  };
  /** @param {unknown} e */
  const failed = (e) => status.replaceChildren(problem(e));
  const items = cart?.items ?? [];
  if (!items.length) {
    screen("Cart", h("p", { id: "empty-cart" }, ["Your cart is empty. ", h("a", { href: "#/" }, ["Browse the products"])]));
    return;
  }
  const lines = items.map((item) => {
    const name = item.product?.name ?? "A product no longer sold";
    const form = /** @type {HTMLFormElement} */ (
      h("form", { class: "controls", novalidate: true, "data-line": name }, [
        field("quantity", "Quantity", { idPrefix: `q-${item.productId}`, type: "number", min: 1, max: 99, step: 1, value: item.quantity, required: true, inputmode: "numeric", class: "qty" }),
        h("button", { type: "submit", class: "secondary", "aria-label": `Update the quantity of ${name}` }, ["Update"]),
        button("Remove", { class: "secondary", "aria-label": `Remove ${name}` }, async () => {
          try {
            await after(await api.removeProduct({ cartId: cartId(), productId: item.productId }));
          } catch (e) {
            failed(e);
          }
        }),
      ])
    );
    onSubmit(form, async () => {
      clearErrors(form);
      if (!valid(form)) return;
      const quantity = Number(/** @type {HTMLInputElement} */ (form.elements.namedItem("quantity")).value);
      try {
        await after(await api.changeProductQuantity({ cartId: cartId(), productId: item.productId, quantity }));
      } catch (e) {
        if (!showViolations(form, e)) failed(e);
      }
    });
    const unit = item.product?.price ?? 0;
    return h("li", { class: "line", "data-item": name }, [
      h("strong", {}, [item.product ? h("a", { href: `#/product/${item.productId}` }, [name]) : name]),
      h("span", { class: "price" }, [price(unit * item.quantity)]),
      form,
    ]);
  });
  const total = items.reduce((sum, i) => sum + (i.product?.price ?? 0) * i.quantity, 0);
  const version = cart?.version ?? 0;
  screen(
    "Cart",
    status,
    h("ul", { class: "lines", id: "cart-lines" }, lines),
    h("p", { class: "total", id: "cart-total" }, [`Total ${price(total)}`]),
    h("div", { class: "actions" }, [
      button("Check out", { id: "checkout" }, async () => {
        try {
          const order = await api.checkout({ cartId: cartId() });
          updateCartCount(null);
          orderPages = [null];
          flash = { text: "Thank you! Your order is placed.", good: true };
          location.hash = `#/order/${order.id}`;
        } catch (e) {
          failed(e);
        }
      }),
      button("Empty the cart", { class: "secondary", id: "empty" }, async () => {
        try {
          await after(await api.resetCart({ cartId: cartId(), expectedVersion: version }));
        } catch (e) {
          failed(e);
        }
      }),
    ]),
  );
}

/** @param {api.Order} o */
function orderDetails(o) {
  return h("table", { class: "details" }, [
    h("thead", {}, [h("tr", {}, [h("th", { scope: "col" }, ["Product"]), h("th", { scope: "col", class: "num" }, ["Unit price"]), h("th", { scope: "col", class: "num" }, ["Quantity"])])]),
    h(
      "tbody",
      {},
      o.details.map((d) => h("tr", {}, [h("td", {}, [d.productName]), h("td", { class: "num" }, [price(d.unitPrice)]), h("td", { class: "num" }, [String(d.quantity)])])),
    ),
  ]);
}

/** @param {string} id */
async function orderScreen(id) {
  let o;
  try {
    o = await api.getOrder({ id });
  } catch (e) {
    screen("Order", problem(e));
    return;
  }
  if (!o) {
    screen("Order", h("p", { class: "notice bad" }, ["No such order."]));
    return;
  }
  screen(
    "Your order",
    h("p", { id: "order-summary" }, [`Order ${o.id.slice(0, 8)} · ${o.status} · placed ${new Date(o.placedAt).toLocaleString()}`]),
    orderDetails(o),
    h("p", { class: "total", id: "order-total" }, [`Total ${price(o.total)}`]),
    h("p", {}, [h("a", { href: "#/orders" }, ["All your orders"])]),
  );
}

async function ordersScreen() {
  if (!api.session()) {
    afterLogin = "#/orders";
    screen("Orders", h("p", {}, [h("a", { href: "#/login" }, ["Log in"]), " to see your orders."]));
    return;
  }
  let page;
  try {
    page = await api.viewOrders({ first: 10, after: orderPages[orderPages.length - 1] });
  } catch (e) {
    screen("Orders", problem(e));
    return;
  }
  const list = page.nodes.map((o) =>
    h("li", { class: "card", "data-order": o.id }, [
      h("h2", {}, [h("a", { href: `#/order/${o.id}` }, [`Order ${o.id.slice(0, 8)}`])]),
      h("p", {}, [`${new Date(o.placedAt).toLocaleString()} · ${o.status}`]),
      h("p", {}, [o.details.map((d) => `${d.quantity} × ${d.productName}`).join(", ")]),
      h("span", { class: "price" }, [price(o.total)]),
    ]),
  );
  const prev = button("Previous page", { class: "secondary", disabled: orderPages.length === 1 }, () => {
    orderPages.pop();
    return ordersScreen();
  });
  const next = button("Next page", { class: "secondary", disabled: !page.pageInfo.hasNextPage }, () => {
    orderPages.push(page.pageInfo.endCursor);
    return ordersScreen();
  });
  screen(
    "Your orders",
    list.length ? h("ul", { class: "grid", id: "orders" }, list) : h("p", {}, ["No orders yet."]),
    h("nav", { class: "pager", "aria-label": "Pages" }, [prev, next]),
  );
}

async function profileScreen() {
  if (!api.session()) {
    afterLogin = "#/profile";
    screen("Profile", h("p", {}, [h("a", { href: "#/login" }, ["Log in"]), " to see your profile."]));
    return;
  }
  let me;
  try {
    me = await api.viewProfile();
  } catch (e) {
    screen("Profile", problem(e));
    return;
  }
  if (!me) {
    screen("Profile", h("p", {}, ["No profile."]));
    return;
  }
  const profile = me;
  const zone = h("section", { class: "danger-zone", "aria-labelledby": "delete-heading" }, [
    h("h2", { id: "delete-heading" }, ["Delete the account"]),
    h("p", {}, ["Your account, your cart and your login go for good."]),
  ]);
  const ask = button("Delete my account", { class: "danger", id: "delete-account" }, () => {
    const out = h("p", { role: "alert" });
    const yes = button("Yes, delete it", { class: "danger", id: "confirm-delete" }, async () => {
      try {
        const key = cartKey();
        await api.deleteAccount({ expectedVersion: profile.version });
        if (key) localStorage.removeItem(key);
        api.forgetSession();
        flash = { text: "Your account is deleted.", good: true };
        location.hash = "#/";
      } catch (e) {
        out.replaceChildren(problem(e));
      }
    });
    const no = button("Cancel", { class: "secondary" }, () => {
      zone.lastElementChild?.replaceWith(ask);
    });
    zone.lastElementChild?.replaceWith(h("div", { class: "actions" }, ["Really?", yes, no, out]));
    yes.focus();
  });
  zone.append(ask);
  screen(
    "Profile",
    h("dl", { class: "profile" }, [
      h("dt", {}, ["Name"]),
      h("dd", { id: "profile-name" }, [profile.name]),
      h("dt", {}, ["Email"]),
      h("dd", { id: "profile-email" }, [profile.email]),
      h("dt", {}, ["Customer since"]),
      h("dd", {}, [new Date(profile.registeredAt).toLocaleDateString()]),
    ]),
    zone,
  );
}

function loginScreen() {
  const form = /** @type {HTMLFormElement} */ (
    h("form", { class: "form", id: "login-form", novalidate: true }, [
      field("email", "Email", { type: "email", autocomplete: "username", required: true }),
      field("password", "Password", { type: "password", autocomplete: "current-password", required: true }),
      h("div", { class: "form-error", role: "alert" }),
      h("div", { class: "actions" }, [h("button", { type: "submit", id: "login" }, ["Log in"]), h("a", { href: "#/register" }, ["New here? Register"])]),
    ])
  );
  onSubmit(form, async () => {
    clearErrors(form);
    if (!valid(form)) return;
    const value = (/** @type {string} */ name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value;
    try {
      await api.login({ email: value("email"), password: value("password") });
      location.hash = afterLogin === "#/login" ? "#/" : afterLogin;
      afterLogin = "#/";
    } catch (e) {
      const text = e instanceof api.ApiError && e.code === "UNAUTHENTICATED" ? "Wrong email or password." : null;
      if (!showViolations(form, e)) form.querySelector(".form-error")?.replaceChildren(text ? h("p", { class: "notice bad" }, [text]) : problem(e));
    }
  });
  screen("Log in", form);
}

function registerScreen() {
  const form = /** @type {HTMLFormElement} */ (
    h("form", { class: "form", id: "register-form", novalidate: true }, [
      field("name", "Name", { type: "text", autocomplete: "name", required: true, minlength: 1, maxlength: 100 }),
      field("email", "Email", { type: "email", autocomplete: "email", required: true, maxlength: 254 }),
      field("password", "Password (8 to 128 characters)", { type: "password", autocomplete: "new-password", required: true, minlength: 8, maxlength: 128 }),
      h("div", { class: "form-error", role: "alert" }),
      h("div", { class: "actions" }, [h("button", { type: "submit", id: "register" }, ["Register"]), h("a", { href: "#/login" }, ["Have an account? Log in"])]),
    ])
  );
  onSubmit(form, async () => {
    clearErrors(form);
    if (!valid(form)) return;
    const value = (/** @type {string} */ name) => /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value;
    const input = { name: value("name"), email: value("email"), password: value("password") };
    try {
      await api.registerCustomer(input);
      await api.login({ email: input.email, password: input.password });
      flash = { text: `Welcome, ${input.name}!`, good: true };
      location.hash = afterLogin === "#/register" ? "#/" : afterLogin;
    } catch (e) {
      if (e instanceof api.ApiError && e.code === "CONFLICT") {
        fieldError(form, "email", "This email is registered already: log in instead.");
      } else if (!showViolations(form, e)) {
        form.querySelector(".form-error")?.replaceChildren(problem(e));
      }
    }
  });
  screen("Register", form);
}

// ------------------------------------------------------------------ frame

function renderAccount() {
  const s = api.session();
  if (!s) {
    account.replaceChildren(h("a", { href: "#/login", id: "nav-login" }, ["Log in"]), h("a", { href: "#/register", id: "nav-register" }, ["Register"]));
    return;
  }
  account.replaceChildren(
    s.roles.includes("back-office") ? h("a", { href: "/back-office/" }, ["Back-office"]) : "",
    button("Log out", { class: "secondary", id: "logout" }, async () => {
      try {
        await api.logout();
      } catch {
        // Forgotten here either way.
      }
      updateCartCount(null);
      flash = { text: "You are logged out.", good: true };
      location.hash = "#/";
      route();
    }),
  );
}

async function route() {
  const [name, id] = location.hash.replace(/^#\/?/, "").split("/");
  for (const a of document.querySelectorAll("[data-nav]")) {
    const here = a.getAttribute("data-nav") === (name || "products");
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  switch (name) {
    case "":
    case undefined:
    case "products":
      return productsScreen();
    case "product":
      return productScreen(decodeURIComponent(id ?? ""));
    case "cart":
      return cartScreen();
    case "order":
      return orderScreen(decodeURIComponent(id ?? ""));
    case "orders":
      return ordersScreen();
    case "profile":
      return profileScreen();
    case "login":
      return loginScreen();
    case "register":
      return registerScreen();
    default:
      screen("Not found", h("p", {}, [h("a", { href: "#/" }, ["Back to the products"])]));
  }
}

api.onSessionChange(() => renderAccount());
window.addEventListener("hashchange", () => busy(route));
renderAccount();
busy(async () => {
  await api.restoreSession().catch(() => null);
  renderAccount();
  if (api.session()) loadCart().catch(() => null);
  await route();
});
