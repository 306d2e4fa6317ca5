// The auditors' pages (roles auditor and admin): a customer as of any instant, the contact
// policy's answer at a past instant (and a recorded decision replayed), the hash chains
// verified, the subject-access export, and forget behind a typed confirmation.
// Hash routes: #/audit  #/audit/as-of?ref=&at=&mode=  #/audit/contact?ref=&channel=&purpose=&at=&axis=
// #/audit/decision/EVENT_ID  #/audit/verify  #/audit/person?ref=
// app.js routes #/audit/... here and hands over the customer page's sections (`kit`).

import { ApiError, api, channelName, enc, h, shortDate, svg, when, whenText } from "./lib.js";

const CHANNELS = ["phone", "sms", "email", "letter", "social"];
const PURPOSES = ["commercial", "service"];
/** Timeline events the as-of page asks for (the API's most). */
const AS_OF_EVENTS = 500;

/** Which roles see which pages: the nav links carry data-roles (index.html). */
export function showRoleNav(me) {
  const role = me && me.role;
  for (const a of document.querySelectorAll("nav.main-nav a[data-roles]")) {
    a.hidden = !role || !a.dataset.roles.split(" ").includes(role);
  }
}

/** What the server said went wrong, in its words (ApiError's message may be the status text). */
export function problem(err) {
  if (err instanceof ApiError && err.body && typeof err.body.error === "string") return err.body.error;
  return err && err.message ? err.message : String(err);
}

/** A datetime-local value ("2026-03-10T12:00") as an ISO instant with this browser's offset. */
export function instant(local) {
  if (!local) return "";
  const d = new Date(local);
  if (Number.isNaN(d.getTime())) return "";
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const pad = (n) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  const base = local.length === 16 ? `${local}:00` : local;
  return `${base}${sign}${pad(off / 60)}:${pad(off % 60)}`;
}

/** An ISO instant as a datetime-local value: this browser's wall clock at that instant. */
function localValue(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime()) ? wallClock(d) : "";
}

function wallClock(d) {
  const pad = (n) => String(n).padStart(2, "0");
  const seconds = d.getSeconds() ? `:${pad(d.getSeconds())}` : "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}${seconds}`;
}

function nowLocal() {
  return wallClock(new Date());
}

/** "9 Mar 2026, 11:00 (your time)": an instant as the form that asked for it shows it. */
function yourTime(iso) {
  const local = localValue(iso);
  return local ? `${whenText(local)} (your time)` : String(iso || "");
}

function tabs(current) {
  const items = [["", "Overview"], ["as-of", "Customer as of"], ["contact", "Contact decision"],
    ["verify", "Verify"], ["person", "Export & forget"]];
  return h("nav.tabs.desk-tabs#audit-tabs", { "aria-label": "auditor pages" },
    items.map(([key, label]) => h("a", {
      href: `#/audit${key ? "/" + key : ""}`, class: key === current ? "on" : "",
      "aria-current": key === current ? "page" : null,
    }, label)));
}

function pageShell(id, current, title, lead, ...body) {
  return h(`section.desk-page#${id}`, tabs(current), h("h1", title), lead ? h("p.lead", lead) : null, ...body);
}

function errorBox(err) {
  return h("p.form-error.desk-error", { role: "alert" }, problem(err));
}

export async function auditPage(el, current, segs, params, kit) {
  const sub = segs[0] || "";
  if (sub === "") return overview(el);
  if (sub === "as-of") return asOfPage(el, current, params, kit);
  if (sub === "contact") return contactPage(el, current, params, kit);
  if (sub === "decision" && segs[1]) return decisionPage(el, current, segs.slice(1).join("/"));
  if (sub === "verify") return verifyPage(el, current);
  if (sub === "person") return personPage(el, current, params, kit);
  el.replaceChildren(kit.notice("Page not found", "There is no auditor page at this address.", kit.homeLink()));
  return undefined;
}

function overview(el) {
  const tile = (href, icon, title, text) => h("a.tile", { href }, svg(icon, "icon tile-icon"), h("strong", title), h("span", text));
  el.replaceChildren(pageShell("audit-page", "", "Audit",
    "Check what the ledger knew and decided, that nothing was changed behind its back, and answer a person's access or erasure request.",
    h("div.tiles",
      tile("#/audit/as-of", "clock", "Customer as of", "The customer as the ledger knew them at an instant, or as it had happened"),
      tile("#/audit/contact", "consent", "Contact decision", "May we have contacted them then? The policy's answer of that day, with its reasons"),
      tile("#/audit/verify", "lock", "Verify the ledger", "Recompute every event's hash chain: nothing changed, deleted or inserted"),
      tile("#/audit/person", "person", "Export & forget", "A subject-access export to download; forget a person (GDPR art. 17)"))));
}

// ---------------------------------------------------------------- a customer as of an instant

function modeChoice(name, mode, labels) {
  return h("fieldset.mode-choice", h("legend", "Mode"),
    labels.map(([value, title, text]) => h("label.mode",
      h("input", { type: "radio", name, value, checked: mode === value }),
      h("span", h("b", title), h("span.small.muted", ` ${text}`)))));
}

const AS_OF_MODES = [
  ["recorded", "As recorded", "what the ledger knew then (facts recorded by that instant)"],
  ["occurred", "As it had happened", "every fact that occurred by then, also those recorded later"],
];

async function asOfPage(el, current, params, kit) {
  const ref = params.get("ref") || "";
  const at = params.get("at") || "";
  const mode = params.get("mode") === "occurred" ? "occurred" : "recorded";
  const refInput = h("input#asof-ref", { type: "search", value: ref, required: true, autocomplete: "off",
    placeholder: "phone, e-mail, @handle, C-number or ledger id", "aria-label": "customer" });
  const atInput = h("input#asof-at", { type: "datetime-local", step: "1", value: localValue(at) || nowLocal(), required: true, "aria-label": "instant" });
  const form = h("form.desk-form#asof-form", {
    onsubmit: (e) => {
      e.preventDefault();
      const chosen = form.querySelector("input[name=asof-mode]:checked");
      const q = new URLSearchParams({ ref: refInput.value.trim(), at: instant(atInput.value), mode: chosen ? chosen.value : "recorded" });
      kit.go(`#/audit/as-of?${q}`);
    },
  },
  h("label", "Customer ", refInput), h("label", "Instant (your local time) ", atInput),
  modeChoice("asof-mode", mode, AS_OF_MODES),
  h("button.primary#asof-show", { type: "submit" }, svg("clock", "icon"), " Show"));
  const head = pageShell("asof-page", "as-of", "A customer as of an instant",
    "Pick a customer and an instant. As recorded shows what the ledger knew then; as it had happened adds what happened by then but was recorded later.", form);
  el.replaceChildren(head);
  if (!ref || !at) { refInput.focus(); return; }
  const box = h("div#asof-result", h("p.loading", "Folding the customer's facts up to that instant…"));
  head.append(box);
  const q = new URLSearchParams({ [mode === "occurred" ? "occurred_by" : "recorded_by"]: at, limit: String(AS_OF_EVENTS) });
  let doc;
  try {
    doc = await api(`/api/customers/${enc(ref)}/as-of?${q}`);
  } catch (err) {
    if (!current()) return;
    box.replaceChildren(err instanceof ApiError && err.status === 404
      ? h("section.notice#asof-nobody", { role: "status" }, h("h2", `Nobody known as “${ref}” by ${yourTime(at)}`),
        h("p", mode === "recorded" ? "The ledger had recorded nothing about them by then. Try as it had happened, or a later instant." : "Nothing about them had happened by then."))
      : errorBox(err));
    return;
  }
  if (!current()) return;
  const total = doc.timeline_page && typeof doc.timeline_page.total === "number" ? doc.timeline_page.total : (doc.timeline || []).length;
  // The page shows this instant's events only: no "show older" from today's timeline.
  const view = { ...doc, timeline_page: { limit: AS_OF_EVENTS, total, next_before: null } };
  const late = Array.isArray(doc.recorded_late) ? doc.recorded_late : [];
  const lateTotal = doc.recorded_late_page ? doc.recorded_late_page.total : late.length;
  const as = doc.as_of || {};
  const banner = h(`section.asof-banner.asof-${mode}#asof-banner`, { role: "status", "data-mode": mode },
    svg("clock", "icon verdict-icon"),
    h("div",
      h("div.verdict-headline", mode === "recorded" ? "As recorded " : "As it had happened ", `at ${yourTime(at)}`),
      h("div", mode === "recorded"
        ? `${as.facts ?? "?"} facts recorded by then, through store position ${as.through_position ?? "?"}.`
        : `${as.facts ?? "?"} facts had happened by then; ${lateTotal} of them were recorded after that instant.`),
      total > (doc.timeline || []).length ? h("div.small", `The latest ${(doc.timeline || []).length} of ${total} events are shown.`) : null,
      Array.isArray(doc.quarantined) && doc.quarantined.length ? h("div.small", `${doc.quarantined.length} stored fact(s) left out: the readers cannot handle them (positions ${doc.quarantined.join(", ")}).`) : null));
  if (doc.forgotten) {
    box.replaceChildren(banner, kit.forgottenView(doc));
    return;
  }
  box.replaceChildren(banner,
    late.length ? h("section.panel#asof-late", h("h2", svg("late", "icon"), ` Recorded late (${lateTotal})`),
      h("ul.items", late.map((e) => h("li", h("b", e.type), " happened ", when(e.occurred_at), ", recorded ", when(e.recorded_at),
        h("span.small.muted", ` · position ${e.position}`))))) : null,
    h("div.customer-page",
      kit.customerHeader(view, ref), kit.attention(view),
      h("div.columns",
        h("div.col-main", kit.timelineSection(view, ref)),
        h("aside.col-side", kit.casesSection(view), kit.promisesSection(view), kit.socialSection(view),
          kit.productsSection(view), kit.consentSection(view), kit.contactChangesSection(view), kit.contractsSection(view)))));
}

// ---------------------------------------------------------------- a contact decision, as of

function reasonList(reasons, words) {
  if (!reasons || !reasons.length) return null;
  return h("ul.decision-reasons", reasons.map((r) => h("li", { "data-code": r.code },
    h("strong", words[r.code] || r.code), ": ", r.message)));
}

function verdictBox(id, allowed, headline, reasons, words, extra) {
  const cls = allowed === true ? "allowed" : allowed === false ? "denied" : "unknown";
  return h(`section.verdict.verdict-${cls}#${id}`, { "data-verdict": cls },
    h("div.verdict-banner", { role: "status" },
      svg(cls === "allowed" ? "consent" : cls === "denied" ? "objection" : "alert", "icon verdict-icon"),
      h("div.verdict-text", h("div.verdict-headline", headline))),
    h("div.decision-body", reasonList(reasons, words), extra));
}

async function contactPage(el, current, params, kit) {
  const ref = params.get("ref") || "";
  const at = params.get("at") || "";
  const channel = CHANNELS.includes(params.get("channel")) ? params.get("channel") : "phone";
  const purpose = PURPOSES.includes(params.get("purpose")) ? params.get("purpose") : "commercial";
  const axis = params.get("axis") === "occurred" ? "occurred" : "recorded";
  const campaign = params.get("campaign") || "";
  const refInput = h("input#contact-ref", { type: "search", value: ref, required: true, autocomplete: "off",
    placeholder: "phone, e-mail, @handle, C-number", "aria-label": "customer" });
  const atInput = h("input#contact-at", { type: "datetime-local", step: "1", value: localValue(at) || nowLocal(), required: true });
  const channelSel = h("select#contact-channel", CHANNELS.map((c) => h("option", { value: c, selected: c === channel }, channelName(c))));
  const purposeSel = h("select#contact-purpose", PURPOSES.map((p) => h("option", { value: p, selected: p === purpose }, p === "commercial" ? "Sales / offers" : "Service")));
  const campaignInput = h("input#contact-campaign", { type: "text", value: campaign, placeholder: "optional" });
  const form = h("form.desk-form#contact-form", {
    onsubmit: (e) => {
      e.preventDefault();
      const chosen = form.querySelector("input[name=contact-axis]:checked");
      const q = new URLSearchParams({ ref: refInput.value.trim(), channel: channelSel.value, purpose: purposeSel.value,
        at: instant(atInput.value), axis: chosen ? chosen.value : "recorded" });
      if (campaignInput.value.trim()) q.set("campaign", campaignInput.value.trim());
      kit.go(`#/audit/contact?${q}`);
    },
  },
  h("label", "Customer ", refInput), h("label", "Instant (your local time) ", atInput),
  h("label", "Channel ", channelSel), h("label", "Purpose ", purposeSel), h("label", "Campaign ", campaignInput),
  modeChoice("contact-axis", axis, AS_OF_MODES),
  h("button.primary#contact-ask", { type: "submit" }, "Ask the policy of that day"));
  const eventInput = h("input#replay-event", { type: "text", placeholder: "event id of a contact.decided fact or a contact made", autocomplete: "off" });
  const replayForm = h("form.desk-form.inline#replay-form", {
    onsubmit: (e) => { e.preventDefault(); if (eventInput.value.trim()) kit.go(`#/audit/decision/${enc(eventInput.value.trim())}`); },
  }, h("label", "Replay a recorded decision ", eventInput), h("button.secondary", { type: "submit" }, "Replay"));
  const shell = pageShell("contact-page", "contact", "A contact decision at a past instant",
    "Could the company contact this person on this channel for this purpose at that instant? The contact policy in force then answers, over the history as the ledger knew it (or as it had happened).",
    form, replayForm);
  el.replaceChildren(shell);
  if (!ref || !at) { refInput.focus(); return; }
  const box = h("div#contact-result", h("p.loading", "Asking…"));
  shell.append(box);
  const q = new URLSearchParams({ channel, purpose, at, axis });
  if (campaign) q.set("campaign", campaign);
  let doc;
  try {
    doc = await api(`/api/customers/${enc(ref)}/contact-as-of?${q}`);
  } catch (err) {
    if (current()) box.replaceChildren(errorBox(err));
    return;
  }
  if (!current()) return;
  const d = doc.decision || {};
  const what = purpose === "commercial" ? "Sales / offers" : "Service";
  const who = doc.name || doc.customer_number || ref;
  const hist = doc.history || {};
  box.replaceChildren(
    verdictBox("contact-verdict", d.allowed, `${what} by ${channelName(channel)}: ${d.allowed ? "ALLOWED" : "DENIED"} on ${yourTime(doc.at)}`,
      d.reasons, kit.REASONS,
      h("p.small.muted", `${who} · contact policy ${doc.policy_version} · ${axis === "recorded" ? "as recorded" : "as it had happened"}: ${hist.facts} facts through store position ${hist.through_position}`,
        hist.recorded_late ? `, ${hist.recorded_late} recorded later` : "", ".")),
    h("section.panel#recorded-decisions", h("h2", svg("case", "icon"), " What agents were told then"),
      doc.recorded_decisions && doc.recorded_decisions.length
        ? h("ul.items", doc.recorded_decisions.map((r) => h("li",
          h("b", r.allowed ? "ALLOWED" : "DENIED"), " asked for ", when(r.at), ` (policy ${r.policy_version})`,
          reasonList(r.reasons, kit.REASONS),
          h("a.small", { href: `#/audit/decision/${enc(r.event_id)}` }, "Replay this decision"))))
        : h("p.muted", "No decision of this channel and purpose was recorded in that history.")));
}

async function decisionPage(el, current, eventId) {
  const shell = pageShell("decision-page", "contact", "A recorded decision, replayed",
    "The recorded decision (or contact made) re-run with its policy version over the history recorded before it.");
  el.replaceChildren(shell, h("p.loading", "Replaying…"));
  let doc;
  try {
    doc = await api(`/api/decisions/${enc(eventId)}/replay`);
  } catch (err) {
    if (current()) el.replaceChildren(shell, errorBox(err));
    return;
  }
  if (!current()) return;
  const asked = doc.asked || {};
  const rec = doc.recorded || {};
  const again = doc.recomputed || {};
  el.replaceChildren(shell,
    h(`p.agree.${doc.agree ? "yes" : "no"}#replay-agree`, { role: "status" },
      doc.agree ? "The replay agrees with what was recorded." : "The replay does NOT agree with what was recorded."),
    h("p", `${doc.type} · ${channelName(asked.channel)} · ${asked.purpose} · asked for `, when(asked.at),
      ` · policy ${asked.policy_version} · history through position ${(doc.history || {}).through_position}`),
    h("div.columns.two",
      verdictBox("replay-recorded", rec.allowed, `Recorded: ${rec.allowed ? "ALLOWED" : "DENIED"}`, rec.reasons, {}, rec.note ? h("p.small.muted", rec.note) : null),
      verdictBox("replay-recomputed", again.allowed, `Recomputed: ${again.allowed ? "ALLOWED" : "DENIED"}`, again.reasons, {})));
}

// ---------------------------------------------------------------- verify

function verifyReport(doc) {
  if (doc.state === "idle") return h("p.muted#verify-state", { "data-state": "idle" }, "No verification since the server started.");
  if (doc.state === "running") {
    const p = doc.progress || {};
    const pct = p.head ? Math.min(100, Math.round((100 * (p.position || 0)) / p.head)) : 0;
    return h("div#verify-state", { "data-state": "running", role: "status" },
      h("p", h("b", "Running… "), `position ${p.position ?? 0} of ${p.head ?? "?"}, ${p.events ?? 0} events read.`),
      h("progress", { max: "100", value: String(pct) }));
  }
  if (doc.state === "failed") {
    return h("div.notice.error#verify-state", { "data-state": "failed", role: "alert" }, h("h2", "The verification could not finish"), h("p", doc.error || ""));
  }
  const r = doc.report || {};
  const coverage = r.covered_from === null || r.covered_from === undefined ? "no event is chained yet"
    : r.covered_from <= 1 ? "the whole history is covered" : `history is covered from position ${r.covered_from}`;
  const first = r.first_broken;
  return h(`section.verify-result.${r.intact ? "intact" : "broken"}#verify-state`, { "data-state": "done", "data-intact": r.intact ? "yes" : "no", role: "status" },
    h("div.verdict-headline#verify-verdict", r.intact ? "INTACT" : `BROKEN: ${r.problems} problem${r.problems === 1 ? "" : "s"}`),
    h("p", `${r.events} events read, ${r.chained} chained links checked, ${r.customers} chains; ${coverage}. ${r.seconds} s.`),
    first ? h("p#verify-first", h("b", `First broken link at position ${first.position}`),
      first.customer_id ? ` (customer ${first.customer_id})` : "", `: ${first.what}`) : null,
    Array.isArray(r.problem_list) && r.problem_list.length > 1 ? h("details", h("summary", `All ${r.problem_list.length} problems listed`),
      h("ul", r.problem_list.map((p) => h("li", `position ${p.position}: ${p.what}`)))) : null,
    h("p.small.muted", "Started ", when(doc.started_at), doc.started_by ? ` by ${doc.started_by}` : "", ", finished ", when(doc.finished_at), "."));
}

async function verifyPage(el, current) {
  const status = h("div#verify-box");
  const button = h("button.primary#verify-start", { type: "button" }, svg("lock", "icon"), " Verify the hash chains");
  el.replaceChildren(pageShell("verify-page", "verify", "Verify the ledger",
    "Every recorded event is chained by hash to the customer's previous one. A verification re-reads every stored event and recomputes the chains: an event changed, deleted or inserted behind the ledger's back breaks them.",
    h("p", button), status));
  const draw = (doc) => {
    status.replaceChildren(verifyReport(doc));
    button.disabled = doc.state === "running";
  };
  const follow = async () => {
    while (current()) {
      let doc;
      try { doc = await api("/api/audit/verify"); } catch (err) { status.replaceChildren(errorBox(err)); return; }
      if (!current()) return;
      draw(doc);
      if (doc.state !== "running") return;
      await new Promise((r) => setTimeout(r, 700));
    }
  };
  button.addEventListener("click", async () => {
    button.disabled = true;
    try { draw(await api("/api/audit/verify", { method: "POST" })); } catch (err) { status.replaceChildren(errorBox(err)); button.disabled = false; return; }
    follow();
  });
  await follow();
}

// ---------------------------------------------------------------- export and forget

async function personPage(el, current, params, kit) {
  const ref = params.get("ref") || "";
  const input = h("input#person-ref", { type: "search", value: ref, required: true, autocomplete: "off",
    placeholder: "phone, e-mail, @handle, C-number or ledger id", "aria-label": "customer" });
  const form = h("form.desk-form.inline#person-form", {
    onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) kit.go(`#/audit/person?ref=${enc(input.value.trim())}`); },
  }, h("label", "Customer ", input), h("button.primary", { type: "submit" }, "Find"));
  const shell = pageShell("person-page", "person", "A person's access and erasure requests",
    "Download everything the ledger holds about a person (GDPR art. 15), or forget them (art. 17).", form);
  el.replaceChildren(shell);
  if (!ref) { input.focus(); return; }
  let view;
  try {
    view = await api(`/api/customers/${enc(ref)}`);
  } catch (err) {
    if (!current()) return;
    shell.append(err instanceof ApiError && err.status === 404
      ? h("section.notice#person-nobody", { role: "status" }, h("h2", `Nobody known as “${ref}”`),
        h("p", "A forgotten person is found by their ledger id only."))
      : errorBox(err));
    return;
  }
  if (!current()) return;
  const number = view.customer_number || "";
  const name = view.name || "";
  const download = h("a.button-link#export-download", {
    href: `/api/customers/${enc(ref)}/subject-access`, download: `subject-access-${view.customer_id}.json`,
  }, svg("contract", "icon"), " Download the export (JSON)");
  shell.append(
    h("section.panel#person-who",
      h("h2", svg("person", "icon"), " ", name || number || ref),
      h("p", number ? h("span.badge.number", number) : null, " ", h("span.muted", `Ledger id ${view.customer_id}`),
        view.forgotten ? h("span.badge.grey", " forgotten ", shortDate(view.forgotten_at)) : null),
      h("p", h("a", { href: `#/customer/${enc(ref)}` }, "Open the customer page"))),
    h("section.panel#export-panel",
      h("h2", svg("contract", "icon"), " Subject-access export (art. 15)"),
      h("p", "One JSON file: a readable summary, the customer view every department reads, every stored event of theirs and their rows of every table."),
      h("p", download)),
    view.forgotten ? h("section.notice.forgotten#forget-done", h("h2", "This person was forgotten"),
      h("p", "Their personal data was erased on ", when(view.forgotten_at), "."))
      : forgetPanel(ref, view, number, name, kit));
}

function forgetPanel(ref, view, number, name, kit) {
  const accepted = [ref, number, name].filter((v) => v).map((v) => v.trim().replace(/\s+/g, " ").toLowerCase());
  const reason = h("textarea#forget-reason", { rows: "2", required: true, maxlength: "500",
    placeholder: "e.g. art. 17 request of 3 March, ticket 1234 (no personal data here)" });
  const confirm = h("input#forget-confirm", { type: "text", autocomplete: "off", spellcheck: "false",
    "aria-describedby": "forget-hint" });
  const button = h("button.danger#forget-button", { type: "submit", disabled: true }, "Forget this person");
  const error = h("p.form-error#forget-error", { role: "alert" });
  const check = () => {
    const typed = confirm.value.trim().replace(/\s+/g, " ").toLowerCase();
    button.disabled = !(typed && accepted.includes(typed) && reason.value.trim());
  };
  confirm.addEventListener("input", check);
  reason.addEventListener("input", check);
  const panel = h("section.panel.danger-zone#forget-panel",
    h("h2", svg("alert", "icon"), " Forget (art. 17)"),
    h("p", h("b", "This cannot be undone. "), "Their keys are destroyed: every event of theirs stays in the ledger, unreadable; their views become a tombstone; rejected lines naming them are redacted and rebuilds holding them deleted."));
  const form = h("form.desk-form#forget-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      error.textContent = "";
      try {
        const done = await api(`/api/customers/${enc(ref)}/forget`, { method: "POST", body: { confirm: confirm.value, reason: reason.value } });
        panel.replaceWith(h("section.notice.forgotten#forget-done", { role: "status" },
          h("h2", "Forgotten"),
          h("p", done.already_forgotten ? "They had been forgotten already; the cleaning was done again."
            : `${(done.records || []).length} key(s) destroyed; their events stay, unreadable.`),
          (done.warnings || []).length ? h("ul", done.warnings.map((w) => h("li", w))) : null,
          h("p", h("a#forget-tombstone", { href: `#/customer/${enc(done.customer_id)}` }, "See what is left (the tombstone)"))));
      } catch (err) {
        error.textContent = problem(err);
        check();
      }
    },
  },
  h("label", "Why (recorded in clear with the forget) ", reason),
  h("label", "Type ", h("b", number || ref), name ? [" or ", h("b", name)] : null, " to confirm ", confirm),
  h("p.small.muted#forget-hint", "The button stays off until what you type names this person."),
  error, button);
  panel.append(form);
  return panel;
}
