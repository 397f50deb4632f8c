// A small GraphQL console served at /graphiql, compiled into the BFF like every page:
// an operation, its variables, an access token, the answer, and the schema's root
// fields from introspection (click one to start an operation with it). No editor
// library and nothing from a CDN, so it works offline and under a strict CSP.
// @ts-check

const $ = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
const query = $("query");
const variables = $("variables");
const token = $("token");
const response = $("response");
const docs = $("docs");

async function run() {
  let vars;
  try {
    vars = variables.value.trim() ? JSON.parse(variables.value) : {};
  } catch (e) {
    response.textContent = `The variables are not JSON: ${e instanceof Error ? e.message : e}`;
    return;
  }
  /** @type {Record<string, string>} */
  const headers = { "content-type": "application/json", accept: "application/graphql-response+json, application/json" };
  if (token.value.trim()) headers.authorization = `Bearer ${token.value.trim()}`;
  response.textContent = "…";
  try {
    const res = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query: query.value, variables: vars }) });
    const text = await res.text();
    let shown = text;
    try {
      const body = JSON.parse(text);
      shown = JSON.stringify(body, null, 2);
      const session = body?.data?.login ?? body?.data?.refreshSession;
      if (typeof session?.accessToken === "string") token.value = session.accessToken;
      if (body?.data?.logout === true) token.value = "";
    } catch {
      // Shown as it came.
    }
    response.textContent = `HTTP ${res.status}\n${shown}`;
  } catch (e) {
    response.textContent = `The server cannot be reached: ${e instanceof Error ? e.message : e}`;
  }
}

/**
 * @param {any} t a type reference from introspection
 * @returns {string}
 */
function typeName(t) {
  if (!t) return "?";
  if (t.kind === "NON_NULL") return `${typeName(t.ofType)}!`;
  if (t.kind === "LIST") return `[${typeName(t.ofType)}]`;
  return t.name;
}

const TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";

async function loadSchema() {
  const q = `{ __schema { queryType { name } mutationType { name } types { name fields { name description args { name type { ${TYPE_REF} } } type { ${TYPE_REF} } } } } }`;
  try {
    const res = await fetch("/graphql", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: q }) });
    const body = await res.json();
    const schema = body.data.__schema;
    const roots = [
      ["query", schema.queryType?.name],
      ["mutation", schema.mutationType?.name],
    ];
    docs.replaceChildren();
    for (const [kind, name] of roots) {
      const type = schema.types.find((/** @type {any} */ t) => t.name === name);
      if (!type) continue;
      const h = document.createElement("h3");
      h.textContent = name;
      const list = document.createElement("ul");
      for (const f of type.fields) {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.className = "secondary";
        const args = f.args.map((/** @type {any} */ a) => `${a.name}: ${typeName(a.type)}`).join(", ");
        b.textContent = `${f.name}${args ? `(${args})` : ""}: ${typeName(f.type)}`;
        b.addEventListener("click", () => {
          const vars = f.args.map((/** @type {any} */ a) => `$${a.name}: ${typeName(a.type)}`).join(", ");
          const pass = f.args.map((/** @type {any} */ a) => `${a.name}: $${a.name}`).join(", ");
          query.value = `${kind}${vars ? `(${vars})` : ""} {\n  ${f.name}${pass ? `(${pass})` : ""}${scalarType(schema, f.type) ? "" : " {\n    __typename\n  }"}\n}`;
          query.focus();
        });
        li.append(b);
        if (f.description) {
          const p = document.createElement("div");
          p.className = "hint";
          p.textContent = f.description;
          li.append(p);
        }
        list.append(li);
      }
      docs.append(h, list);
    }
  } catch (e) {
    docs.textContent = `The schema could not be loaded: ${e instanceof Error ? e.message : e}`;
  }
}

/**
 * @param {any} schema
 * @param {any} t
 */
function scalarType(schema, t) {
  while (t.ofType) t = t.ofType;
  const found = schema.types.find((/** @type {any} */ x) => x.name === t.name);
  return !found?.fields;
}

$("run").addEventListener("click", run);
for (const el of [query, variables]) {
  el.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run();
    }
  });
}
loadSchema();
