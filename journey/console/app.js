// The department console: one page per question a person at a counter or a phone asks.
// Hash routes (linkable): #/  #/customer/REF  #/case/REF  #/cases  #/promises  #/inbox
// #/warranty/QUERY. Talks only to this server's JSON API (same origin, session cookie).

import {
  ApiError, addressWords, api, channelIcon, channelName, clock, dayKey, dayTitle, deptBadge,
  deptName, DEPARTMENTS, describe, duration, enc, eventIconName, field, fill, h, hiddenTag, isHidden,
  isMarker, networkName, plural, quote, refOf, shortDate, sourceBadge, svg, when, whenText,
  channelsWords, channelWords, fieldWords, kindWords, requesterWords, REASONS,
} from "./lib.js";
import { caseForms, claimActions, configureForms, customerForms, mentionActions, promiseActions } from "./forms.js";
import { auditPage, showRoleNav } from "./audit.js";
import { adminPage } from "./admin.js";

// The channels the contact policy knows (journey/contact-policy.toml, domain CHANNELS) that a
// person would use to reach a customer; "any" is only a wildcard in consents and objections.
const VERDICT_CHANNELS = ["phone", "sms", "email", "letter", "social"];
const PAGE = 50;

const REASON_RANK = ["objection", "consent_withdrawn", "excluded_list", "no_legal_basis", "cooldown",
  "frequency_cap", "quiet_hours", "stale"];

const PAGE_TITLES = {
  "": "Find a customer", search: "Find a customer", customer: "Customer", case: "Case", cases: "Cases",
  promises: "Promises", inbox: "Social inbox", warranty: "Warranty lookup",
};

const state = { me: null, purpose: "commercial", renderSeq: 0 };

const main = () => document.getElementById("main");

// ---------------------------------------------------------------- shell, login, routing

function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [pathPart, query = ""] = raw.split("?");
  const segs = pathPart.split("/").filter((s) => s !== "").map((s) => {
    try { return decodeURIComponent(s); } catch { return s; }
  });
  return { segs, params: new URLSearchParams(query) };
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  const seq = ++state.renderSeq;
  const { segs, params } = route();
  const page = segs[0] || "";
  highlightNav(page);
  // Every page names itself in the tab; a customer's or a case's page then puts its own name.
  document.title = `${PAGE_TITLES[page] || "Customer console"}${PAGE_TITLES[page] ? " · Customer console" : ""}`;
  const el = main();
  el.replaceChildren(h("p.loading", { role: "status" }, "Loading…"));
  window.scrollTo(0, 0);
  const current = () => seq === state.renderSeq;
  try {
    if (page === "" || page === "search") await homePage(el, current, params);
    else if (page === "customer" && segs[1]) await customerPage(el, current, segs.slice(1).join("/"));
    else if (page === "case" && segs[1]) await casePage(el, current, segs.slice(1).join("/"));
    else if (page === "cases") await casesPage(el, current, params);
    else if (page === "promises") await promisesPage(el, current, params);
    else if (page === "inbox") await inboxPage(el, current, segs[1] || params.get("network") || "");
    else if (page === "warranty") await warrantyPage(el, current, segs.slice(1).join("/"));
    else if (page === "audit") await auditPage(el, current, segs.slice(1), params, deskKit());
    else if (page === "admin") await adminPage(el, current, segs.slice(1), params, deskKit());
    else el.replaceChildren(notice("Page not found", "There is no page at this address.", homeLink()));
  } catch (err) {
    if (!current()) return;
    showError(el, err);
  }
  if (current()) document.body.dataset.page = page || "home";
}

// What the auditors' and admins' pages (audit.js, admin.js) reuse of this module.
function deskKit() {
  return { go, notice, homeLink, forgottenView, customerHeader, attention, timelineSection, casesSection,
    promisesSection, socialSection, productsSection, consentSection, contactChangesSection,
    contractsSection, REASONS };
}

function showError(el, err) {
  if (err instanceof ApiError && err.status === 401) {
    showLogin("Your session has ended. Sign in again.");
    return;
  }
  if (err instanceof ApiError && err.status === 403) {
    el.replaceChildren(h("section.notice.forbidden#forbidden", { role: "alert" },
      svg("lock", "icon big-icon"), h("h2", "Your role may not see this"),
      h("p", "Your role may not see this. Ask your supervisor if you need it."), homeLink()));
    return;
  }
  console.error(err);
  el.replaceChildren(notice("Something went wrong",
    err instanceof ApiError ? err.message : "The page could not be shown.", homeLink(), "error"));
}

function notice(title, text, extra, cls = "") {
  return h(`section.notice${cls ? "." + cls : ""}`, { role: "alert" }, h("h2", title), h("p", text), extra);
}

function homeLink() {
  return h("p", h("a", { href: "#/" }, "← Back to search"));
}

function highlightNav(page) {
  for (const a of document.querySelectorAll("nav.main-nav a")) {
    a.classList.toggle("active", a.dataset.page === page || (page === "" && a.dataset.page === "search"));
  }
}

function setUser(me) {
  state.me = me;
  configureForms(me, render);
  showRoleNav(me);
  const box = document.getElementById("user");
  if (!me) {
    box.replaceChildren();
    document.body.classList.add("signed-out");
    return;
  }
  document.body.classList.remove("signed-out");
  box.replaceChildren(
    h("span.user-name", { title: "signed in as" }, svg("person", "icon"), " ", me.name || "?"),
    h("span.user-role", me.department && me.role === me.department ? deptName(me.department)
      : `${me.role || "?"}${me.department ? " · " + deptName(me.department) : ""}`),
    h("button.link-button#logout", { type: "button", onclick: logout }, "Sign out"));
}

function showLogin(message) {
  setUser(null);
  const input = h("input#token", {
    type: "password", name: "token", autocomplete: "current-password", required: true,
    placeholder: "paste your access token", "aria-label": "Access token",
  });
  const error = h("p.form-error#login-error", { role: "alert" }, message || "");
  const button = h("button.primary#login-button", { type: "submit" }, "Sign in");
  const form = h("form.login-form#login-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) { error.textContent = "Paste the access token your supervisor gave you."; return; }
      button.disabled = true;
      error.textContent = "";
      try {
        await api("/api/session", { method: "POST", body: { token } });
        const me = await api("/api/me");
        setUser(me);
        render();
      } catch (err) {
        button.disabled = false;
        error.textContent = err instanceof ApiError && (err.status === 401 || err.status === 403)
          ? (expiredText(err) || "That token was not accepted. Check it and try again.")
          : err.message;
        input.select();
      }
    },
  },
  h("h1", "Sign in to the customer console"),
  h("p.muted", "Every department sees the same customer history: calls, tweets, store visits, letters, cases and promises."),
  h("label", { for: "token" }, "Access token"), input, error, button);
  document.body.dataset.page = "login";
  main().replaceChildren(h("section.login", form));
  input.focus();
}

async function logout() {
  try { await api("/api/session", { method: "DELETE" }); } catch { /* signed out anyway */ }
  showLogin("You have signed out.");
}

function searchTarget(text) {
  const t = text.trim();
  if (!t) return null;
  if (/^K-\S+$/i.test(t)) return `#/case/${enc(t.toUpperCase().startsWith("K-") ? "K-" + t.slice(2) : t)}`;
  if (/^[0-9A-Z]{5}[- ]?[0-9A-Z]{5}$/i.test(t) && /\d/.test(t) && /[a-z]/i.test(t) && !t.includes("@")) {
    return `#/case/${enc(t.toUpperCase())}`;
  }
  return `#/customer/${enc(t)}`;
}

function wireSearch() {
  const form = document.getElementById("search-form");
  const input = document.getElementById("search");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const target = searchTarget(input.value);
    if (target) { input.blur(); go(target); }
  });
}

// What the server said about an expired token or sign-in (it says since when), or "".
function expiredText(err) {
  const detail = err && err.body && err.body.detail;
  if (!detail || !detail.expired_at) return "";
  const when = new Date(detail.expired_at).toLocaleString();
  return detail.expired === "sign-in"
    ? `Your sign-in expired on ${when}. Sign in again.`
    : `This access token expired on ${when}. Ask your supervisor for a new one.`;
}

// A sign-in link (#token=SECRET, what `journey demo --serve` prints): the token goes into the
// session cookie and leaves the address bar and the history at once. Returns why the link did
// not sign in ("" when it did, or there was none), for the sign-in form that follows.
async function signInFromLink() {
  const match = /^#token=([^&]+)/.exec(window.location.hash);
  if (!match) return "";
  history.replaceState(null, "", window.location.pathname + "#/");
  try {
    await api("/api/session", { method: "POST", body: { token: decodeURIComponent(match[1]) } });
    return "";
  } catch (err) {
    return expiredText(err) || "That sign-in link was not accepted. Paste your access token instead.";
  }
}

async function boot() {
  wireSearch();
  const linkError = await signInFromLink();
  window.addEventListener("hashchange", () => { if (state.me) render(); });
  try {
    setUser(await api("/api/me"));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { showLogin(linkError || expiredText(err)); return; }
    main().replaceChildren(notice("The console cannot start", err.message, null, "error"));
    return;
  }
  render();
}

// ---------------------------------------------------------------- home

async function homePage(el) {
  const input = h("input.big-search#home-search", {
    type: "search", placeholder: "+34 600 900 001 · ana@example.es · @handle · C-900001 · K-S4",
    "aria-label": "Customer phone, e-mail, @handle or id", autocomplete: "off",
  });
  const form = h("form.home-search", {
    onsubmit: (e) => { e.preventDefault(); const t = searchTarget(input.value); if (t) go(t); },
  }, input, h("button.primary", { type: "submit" }, svg("search", "icon"), " Find"));
  el.replaceChildren(h("section.home",
    h("h1", "Find a customer"),
    h("p.lead", "Type a phone number, an e-mail, a Twitter/X @handle, a customer number or a case number."),
    form,
    h("div.tiles",
      tile("#/cases?overdue=1", "case", "Overdue complaints", "Complaints past their 15-day answer deadline"),
      tile("#/promises", "promise", "Promises not kept", "What a department promised and nobody did"),
      tile("#/inbox", "social", "Social inbox", "Mentions of the brand nobody has answered"),
      tile("#/warranty", "warranty", "Warranty lookup", "By serial number: no paper invoice needed"))));
  input.focus();
}

function tile(href, icon, title, text) {
  return h("a.tile", { href }, svg(icon, "icon tile-icon"), h("strong", title), h("span", text));
}

// ---------------------------------------------------------------- customer page

async function customerPage(el, current, ref) {
  // One request finds the person; the verdicts are asked only about somebody found, by their
  // ledger id (a search for nobody is one "not found", not one per channel as well).
  let view;
  try {
    view = await api(`/api/customers/${enc(ref)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      if (!current()) return;
      el.replaceChildren(notFound(ref));
      return;
    }
    throw err;
  }
  if (!current()) return;
  document.title = `${view.name && !isMarker(view.name) ? view.name : ref} · Customer console`;
  if (view.forgotten) {
    el.replaceChildren(forgottenView(view));
    return;
  }
  const known = refOf(view.customer_id) ? `ledger:${view.customer_id}` : ref;
  const verdictDone = loadVerdicts(known, state.purpose);
  const verdictBox = h("section.verdict#verdict", { "aria-live": "polite" }, h("p.loading", "Checking whether we may contact…"));
  const page = h("div.customer-page",
    verdictBox,
    customerHeader(view, ref),
    attention(view),
    customerForms(view),
    h("div.columns",
      h("div.col-main", timelineSection(view, ref)),
      h("aside.col-side",
        casesSection(view), promisesSection(view), socialSection(view), productsSection(view),
        consentSection(view), contactChangesSection(view), contractsSection(view))));
  el.replaceChildren(page);
  const verdicts = await verdictDone;
  if (!current()) return;
  verdictBox.replaceWith(verdictSection(verdicts, known));
}

function notFound(ref) {
  const looksSerial = /^[A-Z0-9]{6,}$/i.test(ref) && /\d/.test(ref) && !/^C-/i.test(ref);
  return h("section.notice#not-found", { role: "alert" },
    h("h2", `Nobody found for “${ref}”`),
    /^[\p{L}][\p{L} .'-]*\s[\p{L} .'-]+$/u.test(ref.trim())
      ? h("p#not-a-name", "People are found by phone, e-mail, @handle, customer number or ledger id, not by name.")
      : null,
    h("p", "Check the number or address. Phone numbers work with or without +34; handles start with @."),
    h("ul.plain",
      h("li", h("a", { href: `#/case/${enc(ref)}` }, `Open “${ref}” as a case number or tracking key`)),
      h("li", h("a", { href: `#/warranty/${enc(ref)}` }, `Look up “${ref}” as a product serial number`),
        looksSerial ? h("span.muted", " (it looks like one)") : null)),
    homeLink());
}

function forgottenView(view) {
  const counts = view.counts || {};
  return h("section.notice.forgotten#forgotten",
    h("h2", "This person was forgotten (GDPR art. 17)"),
    h("p", "Their personal data was erased on ", when(view.forgotten_at),
      `. ${plural(counts.events ?? 0, "event is", "events are")} kept without personal data.`),
    h("p.muted", `Ledger id ${view.customer_id || "?"}`), homeLink());
}

async function loadVerdicts(ref, purpose) {
  return Promise.all(VERDICT_CHANNELS.map(async (channel) => {
    try {
      const doc = await api(`/api/customers/${enc(ref)}/can-contact?channel=${enc(channel)}&purpose=${enc(purpose)}`);
      return { channel, purpose, doc };
    } catch (err) {
      return { channel, purpose, error: err };
    }
  }));
}

function reasonRank(r) {
  const i = REASON_RANK.indexOf(r.code);
  return i < 0 ? REASON_RANK.length : i;
}

function verdictSection(results, ref) {
  const purpose = results[0] ? results[0].purpose : state.purpose;
  const known = results.filter((r) => r.doc && typeof r.doc.allowed === "boolean");
  const allowed = known.filter((r) => r.doc.allowed);
  const denied = known.filter((r) => !r.doc.allowed);
  const forbidden = results.some((r) => r.error && r.error.status === 403);
  let cls, headline;
  const what = purpose === "commercial" ? "Commercial contact (offers, sales)" : "Service contact";
  if (!known.length) {
    cls = "unknown";
    headline = forbidden ? `${what}: your role may not see the contact verdict` : `${what}: verdict not available`;
  } else if (!allowed.length) {
    cls = "denied";
    headline = `${what}: DENIED on every channel`;
  } else if (!denied.length) {
    cls = "allowed";
    headline = `${what}: ALLOWED on every channel`;
  } else {
    cls = "mixed";
    headline = `${what}: ALLOWED only by ${allowed.map((r) => channelName(r.channel)).join(", ")} — DENIED by ${denied.map((r) => channelName(r.channel)).join(", ")}`;
  }
  // Every distinct reason, most important first, with the channels it applies to.
  const byMsg = new Map();
  for (const r of denied) {
    for (const reason of r.doc.reasons || []) {
      const key = `${reason.code}|${genericMessage(reason.message, r.channel)}`;
      const entry = byMsg.get(key) || { reason, channels: [] };
      entry.channels.push(r.channel);
      byMsg.set(key, entry);
    }
  }
  const reasons = [...byMsg.values()].sort((a, b) => reasonRank(a.reason) - reasonRank(b.reason));
  const top = reasons[0];
  const toggle = h("div.purpose-toggle", { role: "group", "aria-label": "purpose of the contact" },
    ["commercial", "service"].map((p) => h("button", {
      type: "button", class: p === purpose ? "on" : "", "aria-pressed": p === purpose ? "true" : "false",
      onclick: async (e) => {
        state.purpose = p;
        const box = e.currentTarget.closest("section");
        box.classList.add("busy");
        const fresh = await loadVerdicts(ref, p);
        box.replaceWith(verdictSection(fresh, ref));
      },
    }, p === "commercial" ? "Sales / offers" : "Service")));
  const version = known[0] && known[0].doc.policy_version;
  return h(`section.verdict.verdict-${cls}#verdict`, { "data-verdict": cls },
    h("div.verdict-banner#verdict-banner", { role: "status" },
      svg(cls === "allowed" ? "consent" : cls === "denied" ? "objection" : "alert", "icon verdict-icon"),
      h("div.verdict-text",
        h("div.verdict-headline", headline),
        // The policy's own sentence, which already says what the reason is.
        top ? h("div.verdict-why", sentence(top.reason.message) || REASONS[top.reason.code] || top.reason.code) : null),
      toggle),
    h("div.verdict-channels",
      results.map((r) => {
        const ok = r.doc && r.doc.allowed === true;
        const no = r.doc && r.doc.allowed === false;
        const word = ok ? "ALLOWED" : no ? "DENIED" : r.error && r.error.status === 403 ? "not for your role" : "unknown";
        const codes = no ? (r.doc.reasons || []).slice().sort((a, b) => reasonRank(a) - reasonRank(b))
          .map((x) => REASONS[x.code] || x.code) : [];
        return h(`div.channel-verdict.${ok ? "ok" : no ? "no" : "unknown"}`, { "data-channel": r.channel },
          h("div.cv-head", channelIcon(r.channel), " ", channelName(r.channel)),
          h("div.cv-word", word),
          codes.length ? h("ul.cv-reasons", codes.map((c) => h("li", c))) : null);
      })),
    reasons.length ? h("details.verdict-reasons", { open: true },
      h("summary", `Why (${plural(reasons.length, "reason")})`),
      h("ul", reasons.map((e) => h("li",
        h("strong", REASONS[e.reason.code] || e.reason.code), ` (${e.channels.map(channelName).join(", ")}): `,
        e.reason.message)))) : null,
    version ? h("p.policy-version.muted", `Contact policy ${version}. Asked just now.`) : null);
}

/** "the customer objected ..." -> "The customer objected ..." */
function sentence(text) {
  const s = String(text || "");
  return s ? s[0].toUpperCase() + s.slice(1) : "";
}

/** A reason's message with its channel blanked, to show one line for the same reason on
 * several channels (the policy names a channel in words: "by e-mail", "by SMS"). */
function genericMessage(message, channel) {
  return String(message || "").replaceAll(channelWords(channel), "*").replaceAll(channel, "*");
}

function customerHeader(view, ref) {
  const contact = view.contact && typeof view.contact === "object" ? view.contact : null;
  const name = isHidden(view, "name") ? hiddenTag("name")
    : view.name ? view.name : h("span.muted", view.kind === "prospect" ? "Unregistered prospect" : "Name not recorded");
  const kind = view.kind === "prospect" ? "Prospect (not registered)" : "Customer";
  const idents = Array.isArray(view.identities) ? view.identities : null;
  const contactRow = (label, key, icon, fmt) => h("div.kv",
    h("dt", svg(icon, "icon"), " ", label),
    h("dd", contact ? field(contact, key, fmt || ((v) => v)) : hiddenTag(key)));
  return h("section.customer-head#customer-head",
    h("div.who",
      h("h1#customer-name", name),
      h("p.sub",
        h("span.badge", kind), " ",
        view.customer_number ? h("span.badge.number", view.customer_number) : null, " ",
        view.registered_at ? h("span.muted", "customer since ", when(view.registered_at)) : null)),
    h("dl.contact-grid",
      contactRow("Phone", "phone", "phone"),
      contactRow("E-mail", "email", "email"),
      contactRow("Twitter/X", "twitter", "social"),
      contactRow("Address", "address", "address", (a) => addressWords(a)),
      h("div.kv", h("dt", svg("person", "icon"), " Birthday"), h("dd", field(view, "birthday", (v) => shortDate(v)))),
      h("div.kv", h("dt", svg("any", "icon"), " Language · time zone"),
        h("dd", field(view, "language", (v) => String(v).toUpperCase()), " · ", field(view, "timezone")))),
    idents && idents.length ? h("p.identities",
      h("span.muted", "Known as: "),
      idents.map((i) => h("span.ident", { title: kindWords(i.kind) },
        `${kindWords(i.kind)} `,
        isHidden(i, "value") ? hiddenTag(i.kind) : h("b", String(i.value))))) : null,
    h("p.ledger-id.muted", `Ledger id ${view.customer_id || "?"} · looked up as “${ref}”`));
}

function isOpenCase(c) {
  return c && c.status !== "resolved" && c.status !== "closed";
}

function caseOverdue(c) {
  if (typeof c.overdue === "boolean") return c.overdue;
  if (!isOpenCase(c) || c.kind !== "complaint" || c.first_response_at || !c.answer_due_by) return false;
  const due = Date.parse(c.answer_due_by);
  return !Number.isNaN(due) && due < Date.now();
}

function attention(view) {
  const chips = [];
  const active = (view.objections || []).filter((o) => o.active);
  if (active.length) {
    const o = active[active.length - 1];
    chips.push(h("span.chip.red", svg("objection", "icon"),
      ` Objection: no ${o.purpose || "commercial"} contact on ${channelsWords(o.channels)} since ${shortDate(o.occurred_at)}`));
  }
  const open = (view.cases || []).filter(isOpenCase);
  if (open.length) {
    const late = open.filter(caseOverdue).length;
    chips.push(h(`span.chip.${late ? "red" : "amber"}`, svg("case", "icon"),
      ` ${plural(open.length, "open case")}${late ? ` (${late} overdue)` : ""}`));
  }
  const overdue = (view.promises || []).filter((p) => p.overdue);
  if (overdue.length) chips.push(h("span.chip.red", svg("promise", "icon"), ` ${plural(overdue.length, "overdue promise")}`));
  const broken = (view.promises || []).filter((p) => p.status === "broken");
  if (broken.length) chips.push(h("span.chip.amber", svg("promise", "icon"), ` ${plural(broken.length, "broken promise")}`));
  const unanswered = (view.social && view.social.unanswered) || [];
  if (unanswered.length) chips.push(h("span.chip.amber", svg("social", "icon"), ` ${plural(unanswered.length, "social mention")} not answered`));
  const companyChanges = (view.contact_history || []).filter((c) => c.requested_by && c.requested_by !== "customer");
  if (companyChanges.length) chips.push(h("span.chip.amber", svg("address", "icon"), ` ${plural(companyChanges.length, "contact change")} not asked for by the customer`));
  const verify = (view.contact && Array.isArray(view.contact.address_verify) && view.contact.address_verify.length) || 0;
  if (verify) chips.push(h("span.chip.amber", svg("address", "icon"), " Address to verify"));
  if (!chips.length) return h("div.attention.none", h("span.chip.green", svg("consent", "icon"), " Nothing pending"));
  return h("div.attention#attention", chips);
}

function section(title, icon, id, ...body) {
  return h(`section.panel${id ? "#" + id : ""}`, h("h2", svg(icon, "icon"), " ", title), ...body);
}

function casesSection(view) {
  const cases = Array.isArray(view.cases) ? view.cases : [];
  const open = cases.filter(isOpenCase);
  const closed = cases.filter((c) => !isOpenCase(c));
  const row = (c) => {
    const overdue = caseOverdue(c);
    return h(`li.case-item${overdue ? ".overdue" : ""}`,
      h("a.case-link", { href: `#/case/${enc(c.case_id || c.tracking_key)}` }, c.case_id || c.tracking_key),
      " ", h("span.badge", c.kind || "case"), " ", h("span.status", (c.status || "?").toUpperCase()),
      overdue ? h("span.badge.red", "OVERDUE") : null,
      h("div", quote(c.subject, "no subject")),
      h("div.small", "with ", deptBadge(c.owner_department), " · opened ", when(c.opened_at),
        c.transfers ? ` · ${plural(c.transfers, "transfer")}` : "",
        (Array.isArray(c.contradictions) ? c.contradictions.length : c.contradictions)
          ? h("span.badge.red", "contradictory answers") : null));
  };
  return section("Open cases", "case", "open-cases",
    open.length ? h("ul.items", open.map(row)) : h("p.muted", "No open cases."),
    closed.length ? h("details", h("summary", plural(closed.length, "resolved case")),
      h("ul.items", closed.map(row))) : null);
}

function promisesSection(view) {
  const ps = Array.isArray(view.promises) ? view.promises : [];
  const rank = (p) => (p.overdue ? 0 : p.status === "open" ? 1 : p.status === "broken" ? 2 : 3);
  const sorted = ps.slice().sort((a, b) => rank(a) - rank(b));
  const overdue = ps.filter((p) => p.overdue);
  return section("Promises", "promise", "promises",
    overdue.length ? h("p.alert-line", `${overdue.length} overdue: the company promised and has not done it.`) : null,
    sorted.length ? h("ul.items", sorted.map((p) => {
      const made = p.made || {};
      return h(`li.promise-item${p.overdue ? ".overdue" : ""}`,
        h("div", h("b", p.what ? quote(p.what) : p.promise_id || "promise")),
        h("div.small",
          p.overdue ? h("span.badge.red", "OVERDUE") : h(`span.badge${p.status === "broken" ? ".red" : p.status === "kept" ? ".green" : ""}`, (p.status || "?").toUpperCase()),
          ` due ${p.due_by ? shortDate(p.due_by) : "?"} · promised by `, deptBadge(made.department, made.agent),
          made.occurred_at ? [" on ", when(made.occurred_at)] : null,
          p.case_id ? [" · case ", h("a", { href: `#/case/${enc(p.case_id)}` }, p.case_id)] : null),
        promiseActions(p, view.customer_id));
    })) : h("p.muted", "No promises on record."));
}

function socialSection(view) {
  const s = view.social || {};
  const un = Array.isArray(s.unanswered) ? s.unanswered : [];
  if (!un.length && !s.mentions) return null;
  return section("Social media", "social", "social",
    h("p.small.muted", `${plural(s.mentions ?? 0, "mention")}, ${plural(s.replies ?? 0, "reply", "replies")}.`),
    un.length ? h("ul.items", un.map((m) => h("li.mention",
      h("div", h("b", "Not answered: "), quote(m.text)),
      h("div.small", networkName(m.network), " · ", when(m.occurred_at)), mentionActions(m, view.customer_id)))) : h("p.muted", "Every mention was answered."));
}

function productsSection(view) {
  const ps = Array.isArray(view.products) ? view.products : [];
  const claims = Array.isArray(view.warranty_claims) ? view.warranty_claims : [];
  if (!ps.length && !claims.length) return null;
  const today = new Date().toISOString().slice(0, 10);
  return section("Products and warranty", "warranty", "products",
    h("ul.items", ps.map((p) => {
      const inW = p.warranty_ends && p.warranty_ends >= today;
      return h("li",
        h("b", p.product || "product"), p.serial ? h("span.muted", ` serial ${p.serial}`) : null,
        h("div.small", "bought ", when(p.purchased_at), p.store ? ` at ${p.store}` : "", " · ",
          p.warranty_ends ? h(`span.badge.${inW ? "green" : "grey"}`, inW ? `in warranty until ${shortDate(p.warranty_ends)}` : `warranty ended ${shortDate(p.warranty_ends)}`) : "no warranty date"));
    })),
    claims.length ? h("ul.items", claims.map((c) => h("li",
      `Claim ${c.claim_id || ""}: `, h("b", (c.status || "?").toUpperCase()), c.issue ? [" — ", c.issue] : "",
      c.reason ? h("div.small.muted", c.reason) : null, claimActions(c, view.customer_id)))) : null);
}

function consentSection(view) {
  const obj = Array.isArray(view.objections) ? view.objections : [];
  const cons = Array.isArray(view.consents) ? view.consents : [];
  return section("Consent and objections", "consent", "consents",
    obj.length || cons.length ? h("ul.items",
      obj.map((o) => h(`li${o.active ? ".objection-active" : ""}`,
        svg("objection", "icon"), " ", h("b", o.active ? "Objection (in force)" : "Objection (lifted by a later consent)"),
        `: no ${o.purpose || "commercial"} contact on ${channelsWords(o.channels)}`,
        h("div.small", when(o.occurred_at), " · ", deptBadge(o.department, o.agent)))),
      cons.map((c) => h("li",
        svg(c.state === "given" ? "consent" : "objection", "icon"), " ",
        `${c.state === "given" ? "Consent given" : "Consent withdrawn"}: ${channelsWords(c.channel)} for ${c.purpose} contact`,
        h("div.small", when(c.occurred_at), " · ", c.department ? deptBadge(c.department, c.agent) : sourceBadge(c.source))))) :
      h("p.muted", "None recorded."));
}

function contactChangesSection(view) {
  const changes = (Array.isArray(view.contact_history) ? view.contact_history : [])
    .filter((c) => c.change !== "customer.registered");
  if (!changes.length) return null;
  return section("Contact details changed", "address", "contact-changes",
    h("ul.items", changes.slice().reverse().map((c) => {
      const show = (v) => (isMarker(v) ? hiddenTag(c.field) : v && typeof v === "object" ? addressWords(v) : v ?? "—");
      return h("li",
        h("b", fieldWords(c.field)), ": ",
        "previous" in c ? [show(c.previous), " → "] : null,
        "value" in c ? show(c.value) : hiddenTag(c.field),
        h("div.small", when(c.occurred_at), " · ", c.department ? deptBadge(c.department, c.agent) : sourceBadge(c.source),
          c.reason ? [" · why: ", c.reason] : " · no reason given",
          c.requested_by && c.requested_by !== "customer" ? h("span.badge.amber", ` requested by ${requesterWords(c.requested_by)}`) : null,
          c.customer_notified ? h("span.badge.grey", "customer notified") : null));
    })));
}

function contractsSection(view) {
  const cs = Array.isArray(view.contracts) ? view.contracts : [];
  if (!cs.length) return null;
  return section("Contracts", "contract", "contracts",
    h("ul.items", cs.map((c) => h("li", h("b", c.service || c.contract_id), h("span.muted", ` ${c.contract_id || ""}`),
      h("div.small", "since ", when(c.started_at), c.ended_at ? [" · ended ", when(c.ended_at)] : " · active")))));
}

// ---- timeline

function timelineSection(view, ref) {
  const events = new Map();
  const add = (list) => { for (const e of list || []) events.set(e.event_id || `${e.position}`, e); };
  add(view.timeline);
  // The API sends the latest events and `timeline_page` {limit, total, next_before}: the cursor
  // for GET /api/customers/{ref}/timeline?before=... (older events, newest first).
  const page = view.timeline_page && typeof view.timeline_page === "object" ? view.timeline_page : null;
  const total = page && typeof page.total === "number" ? page.total
    : view.counts && typeof view.counts.events === "number" ? view.counts.events : null;
  let nextBefore = page && "next_before" in page ? page.next_before : undefined;
  const filter = { dept: "", lateOnly: false };

  const body = h("div.timeline#timeline");
  const more = h("button.secondary#show-older", { type: "button" }, "Show older events");
  const status = h("p.small.muted.timeline-count");
  const chips = h("div.dept-filter", { role: "group", "aria-label": "filter by department" });

  // Without a cursor from the server: the oldest event shown (by when it happened, then position).
  const oldestPos = () => {
    const sorted = [...events.values()].sort(byOccurredDesc);
    return sorted.length ? sorted[sorted.length - 1].position : 0;
  };
  const hasMore = () => {
    if (nextBefore === null) return false;
    if (nextBefore !== undefined) return true;
    return total !== null ? events.size < total : events.size >= PAGE;
  };

  function draw() {
    const all = [...events.values()].sort(byOccurredDesc);
    const depts = new Map();
    for (const e of all) {
      const k = e.department || "";
      depts.set(k, (depts.get(k) || 0) + 1);
    }
    fill(chips,
      h("button", { type: "button", class: filter.dept === "" ? "on" : "", onclick: () => { filter.dept = ""; draw(); } }, "All departments"),
      [...depts.entries()].filter(([k]) => k).map(([k, n]) => h("button", {
        type: "button", class: filter.dept === k ? "on" : "", "data-dept": k,
        onclick: () => { filter.dept = filter.dept === k ? "" : k; draw(); },
      }, svg(k in DEPARTMENTS ? k : "system", "icon"), ` ${deptName(k)} (${n})`)),
      h("label.late-toggle", h("input", { type: "checkbox", checked: filter.lateOnly, onchange: (e) => { filter.lateOnly = e.target.checked; draw(); } }), " only late"));
    const shown = all.filter((e) => (!filter.dept || e.department === filter.dept) && (!filter.lateOnly || e.late));
    fill(body, dayGroups(shown));
    if (!shown.length) body.replaceChildren(h("p.muted", all.length ? "No events match the filter." : "No events recorded."));
    const nDepts = view.counts && view.counts.by_department ? Object.keys(view.counts.by_department).length : depts.size;
    const lateN = all.filter((e) => e.late).length;
    status.textContent = `Showing ${all.length}${total !== null ? ` of ${total}` : ""} events across ${nDepts} department${nDepts === 1 ? "" : "s"}, newest first, in local time as recorded${lateN ? ` · ${lateN} recorded late` : ""}.`;
    more.hidden = !hasMore();
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    more.textContent = "Loading…";
    try {
      const before = nextBefore !== undefined && nextBefore !== null ? nextBefore : oldestPos();
      const doc = await api(`/api/customers/${enc(ref)}/timeline?limit=${PAGE}&before=${enc(before)}`);
      const list = Array.isArray(doc) ? doc : doc.events || [];
      const n = events.size;
      add(list);
      nextBefore = doc && !Array.isArray(doc) && "next_before" in doc ? doc.next_before : (list.length < PAGE ? null : undefined);
      if (events.size === n) nextBefore = null;
    } catch (err) {
      status.textContent = `Could not load older events: ${err.message}`;
    }
    more.disabled = false;
    more.textContent = "Show older events";
    draw();
  });
  draw();
  return h("section.panel.timeline-panel#timeline-panel",
    h("h2", svg("clock", "icon"), " Everything that happened"), status, chips, body, h("div.more", more));
}

/** Events grouped under day headings (local date as recorded), in the order given. */
function dayGroups(list) {
  const groups = [];
  let cur = null;
  for (const e of list) {
    const k = dayKey(e.occurred_at);
    if (!cur || cur.key !== k) { cur = { key: k, items: [] }; groups.push(cur); }
    cur.items.push(e);
  }
  return groups.map((g) => h("div.day", { "data-day": g.key },
    h("h3.day-title", dayTitle(g.key)), h("ol.events", g.items.map(eventRow))));
}

function byOccurredDesc(a, b) {
  const ta = Date.parse(a.occurred_at), tb = Date.parse(b.occurred_at);
  if (ta !== tb) return (Number.isNaN(tb) ? -Infinity : tb) - (Number.isNaN(ta) ? -Infinity : ta);
  return (b.position ?? 0) - (a.position ?? 0);
}

function eventRow(e) {
  const data = e.data && typeof e.data === "object" ? e.data : (isMarker(e.data) || !("data" in e) ? null : {});
  const text = data === null ? [describe(e.type, {}), " ", hiddenTag("details")] : describe(e.type, data);
  const important = e.type === "objection.recorded" || e.type === "promise.broken" || e.type === "consent.withdrawn";
  return h(`li.event${e.late ? ".late" : ""}${important ? ".important" : ""}`, {
    "data-type": e.type, "data-department": e.department || "", "data-channel": e.channel || "",
  },
  h("span.ev-time", { title: e.occurred_at || "" }, clock(e.occurred_at)),
  h(`span.ev-icon.ch-${e.channel || "none"}`, { title: e.channel ? channelName(e.channel) : e.type }, svg(eventIconName(e), "icon")),
  h("div.ev-body",
    h("div.ev-text", text),
    h("div.ev-meta",
      e.department ? deptBadge(e.department, e.agent) : sourceBadge(e.source),
      e.channel && e.channel !== "any" ? h("span.ev-channel", channelName(e.channel)) : null,
      e.case_id ? h("a.ev-case", { href: `#/case/${enc(e.case_id)}` }, `case ${e.case_id}`) : null,
      e.campaign ? h("span.muted", `campaign ${e.campaign}`) : null),
    e.late ? h("div.late-note", svg("late", "icon"), h("b", " RECORDED LATE"),
      ` — entered in the ledger ${whenText(localRecorded(e.recorded_at))}${typeof e.lag_s === "number" ? `, ${duration(e.lag_s)} after it happened` : ""}, after events that happened later were already on record.`) : null));
}

function localRecorded(iso) {
  if (!iso) return null;
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

// ---------------------------------------------------------------- case page

async function casePage(el, current, ref) {
  let c;
  try {
    c = await api(`/api/cases/${enc(ref)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      if (!current()) return;
      el.replaceChildren(notice(`No case “${ref}”`, "Check the case number (like K-2041) or the tracking key the customer was given (like B2PWD-27T6Y).", homeLink()));
      return;
    }
    throw err;
  }
  if (!current()) return;
  document.title = `Case ${c.case_id} · Customer console`;
  const cust = c.customer || {};
  const custRef = refOf(cust.customer_number, cust.customer_id);
  const history = Array.isArray(c.history) ? c.history : [];
  const contradictions = Array.isArray(c.contradictions) ? c.contradictions : [];
  el.replaceChildren(h("div.case-page",
    h("section.case-head#case-head",
      h("h1", svg("case", "icon"), ` Case ${c.case_id || ref} `,
        h(`span.status-pill.${c.status === "open" ? "open" : "closed"}`, (c.status || "?").toUpperCase()),
        c.overdue ? h("span.status-pill.overdue", "OVERDUE") : null),
      h("p.subject", quote(c.subject, "no subject")),
      h("p.sub", h("span.badge", c.kind || "case"), " tracking key ", h("b.mono", c.tracking_key || "—"),
        " · now with ", deptBadge(c.owner_department)),
      h("p", "Customer: ", custRef ? h("a#case-customer", { href: `#/customer/${enc(custRef)}` },
        isHidden(cust, "name") ? hiddenTag("name") : cust.name || custRef, refOf(cust.customer_number) ? ` (${cust.customer_number})` : "")
        : h("span.muted", "unknown"))),
    contradictions.length ? h("section.panel.contradictions#contradictions",
      h("h2", svg("alert", "icon"), ` Contradictory answers (${contradictions.length})`),
      contradictions.map((x) => h("div.contradiction",
        statement("Said YES", x.yes), statement("Said NO", x.no),
        h("p.small.muted", `Contradicted on ${whenText(x.contradicted_at)}${x.topic ? ` · topic ${x.topic}` : ""}. The owner should settle it with the customer.`)))) : null,
    caseForms(c),
    clocksSection(c),
    transfersSection(c, history),
    Array.isArray(c.promises) && c.promises.length ? section("Promises on this case", "promise", "case-promises",
      h("ul.items", c.promises.map((p) => h(`li${p.overdue ? ".overdue" : ""}`,
        h("b", p.what ? quote(p.what) : p.promise_id), ` due ${p.due_by ? shortDate(p.due_by) : "?"} `,
        h(`span.badge.${p.overdue || p.status === "broken" ? "red" : p.status === "kept" ? "green" : "grey"}`,
          p.overdue ? "OVERDUE" : (p.status || "?").toUpperCase()),
        h("div.small", "promised by ", deptBadge(p.made_department, p.made_agent), " on ", when(p.made_at),
          p.closed_at ? [" · closed ", when(p.closed_at)] : null))))) : null,
    section("Case history", "clock", "case-history",
      h("p.small.muted", "Oldest first, in local time as recorded."),
      h("div.case-events", dayGroups(history.map((e) => ({
        ...e, data: { ...e, case_id: c.case_id }, channel: null, case_id: null,
        lag_s: lagSeconds(e),
      })))))));
}

function lagSeconds(e) {
  const a = Date.parse(e.occurred_at), b = Date.parse(e.recorded_at);
  return Number.isNaN(a) || Number.isNaN(b) ? null : (b - a) / 1000;
}

function statement(label, s) {
  if (!s) return null;
  return h("div.statement", h("b", label), " — ", deptBadge(s.department, s.agent), " on ", when(s.occurred_at),
    h("div", s.text ? quote(s.text) : s.type));
}

function clocksSection(c) {
  const now = Date.now();
  const due = c.answer_due_by ? Date.parse(c.answer_due_by) : NaN;
  let dueState = null;
  if (c.answer_due_by) {
    if (c.first_response_at) {
      dueState = c.answered_late ? h("span.badge.red", "answered LATE") : h("span.badge.green", "answered in time");
    } else if (c.overdue || (!Number.isNaN(due) && due < now && c.status === "open")) {
      dueState = h("span.badge.red", `OVERDUE by ${duration(c.overdue_s ?? (now - due) / 1000)}`);
    } else if (!Number.isNaN(due)) {
      dueState = h("span.badge.amber", `${duration((due - now) / 1000)} left`);
    }
  }
  const fr = c.first_response || {};
  const clockBox = (label, value, extra, id) => h("div.clock", id ? { id } : {}, h("div.clock-label", label), h("div.clock-value", value), extra ? h("div.clock-extra", extra) : null);
  return h("section.panel#clocks", h("h2", svg("clock", "icon"), " Clocks"),
    h("div.clock-grid",
      clockBox("Opened", when(c.opened_at), c.opened_by ? deptBadge(c.opened_by.department, c.opened_by.agent) : null, "clock-opened"),
      clockBox(`Answer due (${c.answer_days ?? 15} days)`, c.answer_due_by ? when(c.answer_due_by) : h("span.muted", "no deadline for this kind"), dueState, "clock-due"),
      clockBox("First answer", c.first_response_at ? when(c.first_response_at) : h("span.muted", "not answered yet"),
        c.first_response_at ? [`after ${duration(c.response_s)}`, fr.department ? [" by ", deptBadge(fr.department, fr.agent)] : null] : null, "clock-answer"),
      clockBox("Resolved", c.resolved_at ? when(c.resolved_at) : h("span.muted", "not resolved"),
        c.resolved_at ? [`after ${duration(c.resolution_s)}`, c.resolution ? [" — ", quote(c.resolution)] : ""] : null, "clock-resolved"),
      clockBox("Age", c.age_s !== null && c.age_s !== undefined ? duration(c.age_s) : "—", c.last_activity_at ? ["last activity ", when(c.last_activity_at)] : null, "clock-age"),
      clockBox("Activity", `${plural(c.transfers ?? 0, "transfer")} · ${plural(c.responses ?? 0, "answer")} · ${plural(c.notes ?? 0, "note")}`,
        [c.reopened ? `reopened ${c.reopened === 1 ? "once" : `${c.reopened} times`} · ` : "", c.late_events ? h("span.badge.amber", `${plural(c.late_events, "fact")} recorded late`) : "no late facts"], "clock-activity")));
}

function transfersSection(c, history) {
  const transfers = history.filter((e) => e.type === "case.transferred");
  const opened = history.find((e) => e.type === "case.opened");
  const start = (c.opened_by && c.opened_by.department) || (opened && opened.department);
  const chain = [start, ...transfers.map((t) => t.to)].filter((d, i, a) => d && (i === 0 || d !== a[i - 1] || true));
  return h("section.panel#transfers", h("h2", svg("arrow", "icon"), ` Transfers (${transfers.length})`),
    h("div.chain", chain.map((d, i) => [i ? svg("arrow", "icon chain-arrow") : null, deptBadge(d)])),
    transfers.length ? h("ol.items.transfer-list", transfers.map((t) => h("li",
      when(t.occurred_at), " ", deptBadge(t.department, t.agent), " passed it to ", deptBadge(t.to),
      t.reason ? h("div.small", "why: ", t.reason) : h("div.small.muted", "no reason given"),
      t.late ? h("span.badge.amber", "recorded late") : null))) : h("p.muted", "Never transferred: still with the department that opened it."),
    Array.isArray(c.departments) && c.departments.length ? h("p.small", "Departments involved: ", c.departments.map((d) => [deptBadge(d), " "])) : null);
}

// ---------------------------------------------------------------- lists: cases, promises

// One page of a list at a time (GET ...?limit=&offset=): "1-100 of 2,412" and the way to the
// previous and next pages, linkable as #/cases?offset=100 (the filters stay in the address).
const LIST_PAGE = 100;

function listOffset(params) {
  const n = Number.parseInt(params.get("offset") || "0", 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function count(n) {
  return typeof n === "number" ? n.toLocaleString("en") : "?";
}

/** The page's place in the list and previous/next links; `at(offset)` is the page's address. */
function pager(doc, shown, at, id) {
  const total = typeof doc.total === "number" ? doc.total : shown;
  const offset = typeof doc.offset === "number" ? doc.offset : 0;
  const limit = typeof doc.limit === "number" ? doc.limit : LIST_PAGE;
  const range = shown ? `${count(offset + 1)}-${count(offset + shown)} of ${count(total)}`
    : total ? `nothing from ${count(offset + 1)}: there are ${count(total)}` : "none";
  const link = (cls, to, text, rel) => h(`a.${cls}`, { href: at(to), rel }, text);
  return h(`nav.tabs.pager#${id}`, { "aria-label": "pages of the list" },
    offset > 0 ? link("pager-prev", Math.max(0, Math.min(offset - limit, total - limit)), "← Previous", "prev") : null,
    h("span.pager-range", { role: "status" }, range),
    offset + shown < total ? link("pager-next", offset + limit, "Next →", "next") : null);
}

/** Links to each state of a list, with how many rows are in it (the document's `counts`). */
function stateTabs(id, states, current, counts, at) {
  return h(`nav.tabs#${id}`, { "aria-label": "show" }, states.map(([value, label, n]) => h("a", {
    href: at(value), class: value === current ? "on" : "", "data-state": value,
    "aria-current": value === current ? "page" : null,
  }, n === undefined ? label : `${label} (${count(n)})`)));
}

async function casesPage(el, current, params) {
  // #/cases?overdue=1 and ?open=1 are older addresses of two of the states.
  const legacy = params.get("overdue") === "1" || params.get("overdue") === "true" ? "overdue"
    : params.get("open") === "1" || params.get("open") === "true" ? "open" : "";
  const state = ["open", "resolved", "overdue"].includes(params.get("status")) ? params.get("status") : legacy;
  const dept = params.get("department") || "";
  const kind = params.get("kind") || "";
  const offset = listOffset(params);
  const qs = new URLSearchParams({ limit: String(LIST_PAGE), offset: String(offset) });
  if (state) qs.set("status", state);
  if (dept) qs.set("department", dept);
  if (kind) qs.set("kind", kind);
  const doc = await api(`/api/cases?${qs}`);
  if (!current()) return;
  const rows = Array.isArray(doc) ? doc : (doc && doc.cases) || [];
  const address = (changes) => {
    const p = new URLSearchParams(params);
    p.delete("overdue");
    p.delete("open");
    if (state) p.set("status", state);
    p.delete("offset");
    for (const [k, v] of Object.entries(changes)) { if (v) p.set(k, v); else p.delete(k); }
    return `#/cases${p.toString() ? "?" + p : ""}`;
  };
  const counts = (doc && doc.counts) || {};
  const allCount = typeof counts.open === "number" && typeof counts.resolved === "number" ? counts.open + counts.resolved : undefined;
  const tabs = stateTabs("case-states", [["", "All", allCount], ["open", "Open", counts.open],
    ["overdue", "Overdue complaints", counts.overdue], ["resolved", "Resolved", counts.resolved]],
  state, counts, (v) => address({ status: v }));
  const filters = h("form.filters", { onsubmit: (e) => e.preventDefault() },
    h("label", "department ", h("select#f-dept", { onchange: (e) => go(address({ department: e.target.value })) },
      h("option", { value: "" }, "all"),
      Object.keys(DEPARTMENTS).map((d) => h("option", { value: d, selected: d === dept }, deptName(d))))),
    h("label", "kind ", h("select#f-kind", { onchange: (e) => go(address({ kind: e.target.value })) },
      h("option", { value: "" }, "all"),
      ["complaint", "incident", "request", "warranty"].map((k) => h("option", { value: k, selected: k === kind }, k)))));
  const total = typeof doc.total === "number" ? doc.total : rows.length;
  const at = (o) => { const a = address({}); return `${a}${a.includes("?") ? "&" : "?"}offset=${o}`; };
  el.replaceChildren(h("section.list-page#cases-page",
    h("h1", svg("case", "icon"), state === "overdue" ? " Complaints past their answer deadline" : " Cases"),
    h("p.lead", `${count(total)} ${state ? state + " " : ""}case${total === 1 ? "" : "s"}${dept ? ` owned by ${deptName(dept)}` : ""}. Complaints must be answered within ${(doc && doc.answer_days) || 15} days.`),
    tabs, filters,
    rows.length ? [pager(doc, rows.length, at, "cases-pager-top"), h("table.list",
      h("thead", h("tr", ["Case", "Customer", "Subject", "With", "Opened", "Deadline", "Flags"].map((t) => h("th", t)))),
      h("tbody", rows.map((r) => h(`tr${r.overdue ? ".overdue" : ""}`,
        h("td", h("a", { href: `#/case/${enc(r.case_id || r.tracking_key)}` }, r.case_id || r.tracking_key), h("div.small.mono", r.tracking_key || "")),
        h("td", customerLink(r)),
        h("td", h("span.badge", r.kind || "case"), " ", quote(r.subject, "")),
        h("td", deptBadge(r.owner_department)),
        h("td", when(r.opened_at), h("div.small.muted", `age ${duration(r.age_s)}`)),
        h("td", r.overdue ? h("span.badge.red", `OVERDUE ${duration(r.overdue_s)}`) : r.answer_due_by ? when(r.answer_due_by) : h("span.muted", "—"),
          r.first_response_at ? h("div.small", "answered ", when(r.first_response_at)) : null),
        h("td.flags", (r.status || "").toUpperCase(), " ",
          r.transfers ? h("span.badge.grey", `${r.transfers} transfer${r.transfers > 1 ? "s" : ""}`) : null,
          r.contradictions ? h("span.badge.red", "contradiction") : null,
          r.late_events ? h("span.badge.amber", `${r.late_events} late`) : null))))),
    pager(doc, rows.length, at, "cases-pager")]
      : [h("p.muted", total ? "No cases on this page." : "No cases match."), total ? pager(doc, 0, at, "cases-pager") : null]));
}

function customerLink(r) {
  const ref = refOf(r.customer_number, r.customer_id);
  if (!ref) return h("span.muted", "unknown");
  const nameKey = "customer_name" in r ? "customer_name" : "name";
  const number = refOf(r.customer_number);
  const name = isHidden(r, nameKey) ? hiddenTag("name")
    : r[nameKey] || (number ? number : h("span", "unregistered prospect ", h("span.small.muted", `${ref.slice(0, 8)}…`)));
  return h("a.customer-link", { href: `#/customer/${enc(ref)}` }, name,
    number && r[nameKey] && !isMarker(r[nameKey]) ? h("div.small.muted", number) : null);
}

async function promisesPage(el, current, params) {
  // The default is what the home page's tile promises: those not kept, broken or overdue.
  // (#/promises?all=1 is the older address of every promise.)
  const STATES = ["unkept", "overdue", "broken", "open", "kept", "all"];
  const asked = params.get("status") || (params.get("all") === "1" ? "all" : "unkept");
  const state = STATES.includes(asked) ? asked : "unkept";
  const offset = listOffset(params);
  const qs = new URLSearchParams({ limit: String(LIST_PAGE), offset: String(offset) });
  if (state !== "all") qs.set("status", state);
  const doc = await api(`/api/promises?${qs}`);
  if (!current()) return;
  const rows = Array.isArray(doc) ? doc : (doc && doc.promises) || [];
  const counts = (doc && doc.counts) || {};
  const address = (s, o) => `#/promises?status=${s}${o ? `&offset=${o}` : ""}`;
  const allCount = ["open", "kept", "broken"].every((k) => typeof counts[k] === "number") ? counts.open + counts.kept + counts.broken : undefined;
  const tabs = stateTabs("promise-states", [["unkept", "Not kept", counts.unkept], ["overdue", "Overdue", counts.overdue],
    ["broken", "Broken", counts.broken], ["open", "Open", counts.open], ["kept", "Kept", counts.kept], ["all", "All", allCount]],
  state, counts, (s) => address(s, 0));
  const titles = { unkept: " Promises not kept", overdue: " Promises past their due date", broken: " Promises broken",
    open: " Open promises", kept: " Promises kept", all: " Promises" };
  const total = typeof doc.total === "number" ? doc.total : rows.length;
  const at = (o) => address(state, o);
  const badge = (p) => h(`span.badge.${p.status === "broken" ? "red" : p.status === "kept" ? "green" : "grey"}`, (p.status || "?").toUpperCase());
  el.replaceChildren(h("section.list-page#promises-page",
    h("h1", svg("promise", "icon"), titles[state]),
    h("p.lead", `${count(total)} promise${total === 1 ? "" : "s"}${state === "unkept" ? " broken or past their due date" : ""}. One department's promise is the company's promise.`),
    tabs,
    rows.length ? [pager(doc, rows.length, at, "promises-pager-top"), h("table.list",
      h("thead", h("tr", ["Promise", "Customer", "What was promised", "Due", "Promised by", "Case"].map((t) => h("th", t)))),
      h("tbody", rows.map((p) => h(`tr${p.overdue || p.status === "broken" ? ".overdue" : ""}`,
        h("td", p.promise_id || "", h("div.small", badge(p)), promiseActions(p, p.customer_id)),
        h("td", customerLink(p)),
        h("td", quote(p.what, "")),
        h("td", p.due_by ? shortDate(p.due_by) : "—", p.overdue ? h("div", h("span.badge.red", `OVERDUE ${duration(p.overdue_s)}`)) : null),
        h("td", deptBadge(p.made_department, p.made_agent), h("div.small", when(p.made_at)),
          p.closed_at ? h("div.small", `${p.status === "kept" ? "kept" : "broken"} `, when(p.closed_at)) : null),
        h("td", p.case_id ? h("a", { href: `#/case/${enc(p.case_id)}` }, p.case_id) : h("span.muted", "—")))))),
    pager(doc, rows.length, at, "promises-pager")]
      : [h("p.muted", total ? "No promises on this page." : state === "unkept" ? "Every promise is kept or still on time." : "No promises match."),
        total ? pager(doc, 0, at, "promises-pager") : null]));
}

// ---------------------------------------------------------------- inbox

async function inboxPage(el, current, network) {
  const { params } = route();
  const everything = params.get("all") === "1";
  const offset = listOffset(params);
  const qs = new URLSearchParams({ limit: String(LIST_PAGE), offset: String(offset) });
  if (network) qs.set("network", network);
  if (everything) qs.set("all", "true");
  const doc = await api(`/api/inbox?${qs}`);
  if (!current()) return;
  const waiting = Array.isArray(doc.waiting) ? doc.waiting : [];
  const nets = Array.isArray(doc.by_network) ? doc.by_network : [];
  const o = doc.overall || {};
  const base = (net) => `#/inbox${net ? `/${enc(net)}` : ""}`;
  const address = (net, o2, all = everything) => {
    const p = new URLSearchParams();
    if (all) p.set("all", "1");
    if (o2) p.set("offset", String(o2));
    return `${base(net)}${p.toString() ? "?" + p : ""}`;
  };
  const stat = (label, value) => h("div.stat", h("div.stat-value", value), h("div.stat-label", label));
  const total = typeof doc.total === "number" ? doc.total : waiting.length;
  el.replaceChildren(h("section.list-page#inbox-page",
    h("h1", svg("social", "icon"), " Social inbox: mentions nobody answered"),
    h("nav.tabs", h("a", { href: address("", 0), class: network ? "" : "on" }, "All networks"),
      nets.map((n) => h("a", { href: address(n.network, 0), class: network === n.network ? "on" : "" },
        `${networkName(n.network)} (${n.waiting ?? 0})`))),
    h("form.filters", { onsubmit: (e) => e.preventDefault() },
      h("label", h("input#f-all-mentions", { type: "checkbox", checked: everything, onchange: (e) => go(address(network, 0, e.target.checked)) }),
        " also mentions not addressed to the brand")),
    h("div.stats",
      stat("waiting for an answer", count(o.waiting ?? total)),
      stat("answered", count(o.answered)),
      stat("typical first answer (median)", duration(o.median_s)),
      stat("slowest 10% take over", duration(o.p90_s)),
      stat("oldest waiting", duration(o.oldest_waiting_s))),
    waiting.length ? pager(doc, waiting.length, (o2) => address(network, o2), "inbox-pager-top") : null,
    waiting.length ? h("ol.inbox#inbox-list", { start: String(offset + 1) }, waiting.map((m) => h("li.mention-card", { "data-network": m.network || "" },
      h("div.mention-head", svg("social", "icon"), " ", h("b", networkName(m.network)), " ",
        isHidden(m, "handle") ? hiddenTag("handle") : h("span.handle", m.handle || ""), m.to ? h("span.muted", ` → ${m.to}`) : null,
        h("span.badge.red.waited", `waiting ${duration(m.age_s)}`)),
      h("p.mention-text", quote(m.text)),
      h("div.small", when(m.occurred_at), " · ",
        refOf(m.customer_number, m.customer_id) ? customerLink(m) : h("span.muted", "not a known customer"),
        m.case_id ? [" · ", h("a", { href: `#/case/${enc(m.case_id)}` }, `case ${m.case_id}`), m.case_status ? ` (${m.case_status})` : ""] : null,
        m.department ? [" · ", deptBadge(m.department)] : null), mentionActions(m, m.customer_id))))
      : h("p.muted", total ? "No mentions on this page." : "Nobody is waiting. Well done."),
    waiting.length || total ? pager(doc, waiting.length, (o2) => address(network, o2), "inbox-pager") : null,
    h("p.small.muted", "Oldest first. Answer on the network, then the reply is recorded with the mention it answers.")));
}

// ---------------------------------------------------------------- warranty

async function warrantyPage(el, current, query) {
  const input = h("input.big-search#warranty-search", { type: "search", value: query || "", placeholder: "serial number, or the customer's phone / e-mail / id", "aria-label": "serial number or customer" });
  const form = h("form.home-search", { onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) go(`#/warranty/${enc(input.value.trim())}`); } },
    input, h("button.primary", { type: "submit" }, "Look up"));
  const head = [h("h1", svg("warranty", "icon"), " Warranty lookup"), h("p.lead", "The purchase is in the ledger: no paper invoice needed."), form];
  if (!query) { el.replaceChildren(h("section.list-page", head)); input.focus(); return; }
  let doc;
  try {
    doc = await api(`/api/warranty/${enc(query)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      if (!current()) return;
      el.replaceChildren(h("section.list-page", head, notice(`Nothing found for “${query}”`, "No product with this serial number and no customer with this reference.")));
      return;
    }
    throw err;
  }
  if (!current()) return;
  const products = Array.isArray(doc.products) ? doc.products : [];
  const claims = Array.isArray(doc.claims) ? doc.claims : [];
  el.replaceChildren(h("section.list-page#warranty-page", head,
    products.length ? h("div.cards", products.map((p) => h(`div.card.warranty-card.${p.in_warranty ? "ok" : "no"}`,
      h("div.verdict-headline", p.in_warranty ? "IN WARRANTY" : "WARRANTY ENDED"),
      h("h3", p.product || "product"), h("p", "serial ", h("b.mono", p.serial || "—")),
      h("p", "bought ", when(p.purchased_at), p.store ? ` at store ${p.store}` : "", p.price !== undefined && p.price !== null ? ` for ${p.price} €` : ""),
      h("p", `warranty ${p.warranty_months ?? "?"} months, until `, h("b", shortDate(p.warranty_ends))),
      h("p", "buyer: ", customerLink(p)),
      h("p.small", "sold by ", deptBadge(p.department, p.agent))))) : h("p.muted", "No purchase found."),
    claims.length ? section("Claims", "warranty", "claims", h("ul.items", claims.map((c) => h("li",
      h("b", `${c.claim_id || "claim"}: ${(c.status || "?").toUpperCase()}`), c.issue ? [" — ", c.issue] : "",
      h("div.small", "filed ", when(c.filed_at), " · ", deptBadge(c.filed_department, c.filed_agent),
        c.decided_at ? [" · decided ", when(c.decided_at), " · ", deptBadge(c.decided_department, c.decided_agent)] : null),
      c.reason ? h("div.small.muted", c.reason) : null, claimActions(c, c.customer_id))))) : null));
}

boot();
