// The admins' pages (role admin): API tokens (list, create, rotate, revoke; a new secret is
// shown once) and the ledger's status (positions, lag, the quarantine a page at a time).
// Hash routes: #/admin (= #/admin/tokens)  #/admin/status?offset=N
// app.js routes #/admin/... here.

import { api, deptName, enc, h, svg, when } from "./lib.js";
import { problem } from "./audit.js";

const ROLES = ["sales", "customer_care", "outsourced_callcenter", "social_media", "stores",
  "technical_service", "billing", "auditor", "analyst", "admin"];
const QUARANTINE_PAGE = 20;

function tabs(current) {
  return h("nav.tabs.desk-tabs#admin-tabs", { "aria-label": "admin pages" },
    [["tokens", "Tokens"], ["status", "Ledger status"]].map(([key, label]) => h("a", {
      href: `#/admin/${key}`, class: key === current ? "on" : "", "aria-current": key === current ? "page" : null,
    }, label)));
}

export async function adminPage(el, current, segs, params, kit) {
  const sub = segs[0] || "tokens";
  if (sub === "tokens") return tokensPage(el, current);
  if (sub === "status") return statusPage(el, current, params, kit);
  el.replaceChildren(kit.notice("Page not found", "There is no admin page at this address.", kit.homeLink()));
  return undefined;
}

// ---------------------------------------------------------------- tokens

/** The one place a new secret is ever shown, with a copy button. */
function secretBox(name, secret, what) {
  const field = h("input.mono#new-secret", { type: "text", readonly: true, value: secret, "aria-label": `secret of ${name}` });
  const copied = h("span.small.muted#secret-copied", { role: "status" });
  const copy = h("button.secondary#copy-secret", {
    type: "button",
    onclick: async () => {
      field.select();
      try {
        await navigator.clipboard.writeText(secret);
        copied.textContent = "Copied.";
      } catch {
        document.execCommand("copy");
        copied.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
      }
    },
  }, "Copy");
  return h("section.secret-box#secret-box", { role: "status" },
    h("h2", svg("lock", "icon"), ` ${what}: ${name}`),
    h("p.secret-warning", h("b", "This secret will not be shown again. "), "Copy it now and give it to its holder; the ledger keeps only its hash."),
    h("div.secret-row", field, copy), copied);
}

async function tokensPage(el, current) {
  // A role that may not: the router's "may not see this".
  const [first, me] = await Promise.all([api("/api/tokens"), api("/api/me")]);
  if (!current()) return;
  const list = h("div#token-list");
  const secretSlot = h("div#secret-slot");
  const name = h("input#token-name", { type: "text", required: true, maxlength: "100", autocomplete: "off", placeholder: "e.g. clerk-ana" });
  const role = h("select#token-role", ROLES.map((r) => h("option", { value: r }, r in { auditor: 1, analyst: 1, admin: 1 } ? r : deptName(r))));
  const days = h("input#token-days", { type: "number", min: "0", max: "36500", step: "1", placeholder: "server default" });
  const error = h("p.form-error#token-error", { role: "alert" });
  const refresh = async () => {
    let doc;
    try { doc = await api("/api/tokens"); } catch (err) { list.replaceChildren(h("p.form-error", problem(err))); return; }
    if (!current()) return;
    list.replaceChildren(tokenTable(doc.tokens || [], { secretSlot, error, refresh, me }));
  };
  const form = h("form.desk-form#token-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      const body = { name: name.value.trim(), role: role.value };
      if (days.value !== "") body.days = Number(days.value);
      try {
        const made = await api("/api/tokens", { method: "POST", body });
        secretSlot.replaceChildren(secretBox(made.token.name, made.secret, "New token"));
        name.value = "";
        await refresh();
      } catch (err) {
        error.textContent = problem(err);
      }
    },
  },
  h("label", "Name ", name), h("label", "Role ", role), h("label", "Lifetime in days (0: never expires) ", days),
  h("button.primary#token-create", { type: "submit" }, "Create token"), error);
  el.replaceChildren(h("section.desk-page#tokens-page", tabs("tokens"),
    h("h1", "Access tokens"),
    h("p.lead", "Each person or system signs in with a token of its own; its role decides what it may see and record. Rotate a token to give it a new secret; revoke it to shut it out at once."),
    secretSlot,
    h("section.panel#token-create-panel", h("h2", svg("person", "icon"), " New token"), form),
    list));
  list.replaceChildren(tokenTable(first.tokens || [], { secretSlot, error, refresh, me }));
}

function tokenTable(tokens, ctx) {
  if (!tokens.length) return h("p.muted", "No tokens yet.");
  return h("div.table-wrap", h("table.list#tokens-table",
    h("thead", h("tr", ["Name", "Role", "Created", "Expires", "Last used", "State", ""].map((t) => h("th", t)))),
    h("tbody", tokens.map((t) => h(`tr.token-row.${t.state}`, { "data-name": t.name, "data-state": t.state },
      h("td", h("b", t.name), ctx.me && ctx.me.name === t.name ? [" ", h("span.badge.grey", "you")] : null),
      h("td", t.role, t.department && t.department !== t.role ? h("div.small.muted", deptName(t.department)) : null),
      h("td", when(t.created_at)),
      h("td", t.expires_at ? when(t.expires_at) : h("span.muted", "never")),
      h("td", t.last_used_at ? when(t.last_used_at) : h("span.muted", "never")),
      h("td", h(`span.badge.${t.state === "active" ? "green" : t.state === "revoked" ? "red" : "amber"}.token-state`, t.state),
        t.revoked_at ? h("div.small", "revoked ", when(t.revoked_at)) : t.rotated_at ? h("div.small", "rotated ", when(t.rotated_at)) : null),
      h("td.token-actions", t.state === "revoked" ? null : actions(t, ctx)))))));
}

function actions(t, ctx) {
  const rotate = h("button.secondary.rotate", { type: "button" }, "Rotate");
  const revoke = h("button.secondary.revoke", { type: "button" }, "Revoke");
  rotate.addEventListener("click", async () => {
    ctx.error.textContent = "";
    try {
      const done = await api(`/api/tokens/${enc(t.name)}/rotate`, { method: "POST", body: {} });
      ctx.secretSlot.replaceChildren(secretBox(t.name, done.secret, "New secret"));
      await ctx.refresh();
    } catch (err) { ctx.error.textContent = problem(err); }
  });
  // Two steps: the first click asks, the second revokes (no dialog to dismiss by mistake).
  revoke.addEventListener("click", async () => {
    if (!revoke.classList.contains("armed")) {
      revoke.classList.add("armed", "danger");
      revoke.textContent = ctx.me && ctx.me.name === t.name ? "Revoke your own token now (you will be signed out)" : `Revoke ${t.name} now`;
      return;
    }
    ctx.error.textContent = "";
    try {
      await api(`/api/tokens/${enc(t.name)}`, { method: "DELETE" });
      if (ctx.me && ctx.me.name === t.name) { location.reload(); return; } // signed out: the sign-in form
      await ctx.refresh();
    } catch (err) { ctx.error.textContent = problem(err); }
  });
  return [rotate, " ", revoke];
}

// ---------------------------------------------------------------- ledger status

async function statusPage(el, current, params) {
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const [status, quarantine] = await Promise.all([
    api("/api/status"),
    api(`/api/quarantine?limit=${QUARANTINE_PAGE}&offset=${offset}`),
  ]);
  if (!current()) return;
  const lag = Math.max(0, (status.store_position || 0) - (status.projection_position || 0));
  const stat = (label, value, id) => h(`div.stat${id ? "#" + id : ""}`, h("div.stat-value", value), h("div.stat-label", label));
  const counts = Object.entries(status).filter(([k]) => k.endsWith("_rows"));
  const entries = quarantine.entries || [];
  const total = quarantine.total || 0;
  const at = (o) => `#/admin/status${o ? `?offset=${o}` : ""}`;
  const shown = entries.length;
  const range = shown ? `${offset + 1}–${offset + shown} of ${total}` : total ? `nothing from ${offset + 1}: there are ${total}` : "none";
  const pager = h("nav.tabs.pager#quarantine-pager", { "aria-label": "pages of the quarantine" },
    offset > 0 ? h("a.pager-prev", { href: at(Math.max(0, offset - QUARANTINE_PAGE)), rel: "prev" }, "← Previous") : null,
    h("span.pager-range", { role: "status" }, range),
    offset + shown < total ? h("a.pager-next", { href: at(offset + QUARANTINE_PAGE), rel: "next" }, "Next →") : null);
  el.replaceChildren(h("section.desk-page#status-page", tabs("status"),
    h("h1", "Ledger status"),
    h("p.lead", "Where the event store and the projections stand, and the stored facts the projection set aside because it cannot read them."),
    h("div.stats#positions",
      stat("store head (last position recorded)", String(status.store_position ?? "?"), "store-head"),
      stat("projection position", String(status.projection_position ?? "?"), "projection-position"),
      stat("lag (events not yet projected)", String(lag), "lag"),
      stat("quarantined facts", String(status.quarantined ?? total), "quarantined-count")),
    counts.length ? h("details.panel#row-counts", h("summary", "Rows per table"),
      h("ul.items", counts.map(([k, v]) => h("li", `${k.replace(/_rows$/, "").replace(/_/g, " ")}: ${v}`)))) : null,
    h("section.panel#quarantine",
      h("h2", svg("alert", "icon"), ` Quarantine (${total})`),
      total ? h("p.small.muted", "Once the code or an upcaster can read them, `journey quarantine retry` applies them again.") : null,
      total ? pager : null,
      entries.length ? h("div.table-wrap", h("table.list#quarantine-table",
        h("thead", h("tr", ["Position", "Type", "Customer", "Reason", "Quarantined"].map((t) => h("th", t)))),
        h("tbody", entries.map((e) => h("tr.quarantine-row", { "data-position": String(e.position) },
          h("td.mono", String(e.position)),
          h("td", e.type || h("span.muted", "unknown")),
          h("td", e.customer_id ? h("a.mono", { href: `#/customer/${enc(e.customer_id)}` }, `${e.customer_id.slice(0, 8)}…`) : h("span.muted", "—")),
          h("td", e.reason),
          h("td", when(e.quarantined_at)))))))
        : h("p.muted#quarantine-empty", total ? "No entries on this page." : "Nothing is quarantined: the projection reads every stored fact."))));
}
