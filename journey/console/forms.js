// Recording from the console: the forms each desk fills in where it reads (the customer page,
// the case page, the promises list, the social inbox). Every form sends one fact to
// POST /api/facts, the same door as `journey append`; the server validates it with the
// catalogue and refuses a type the signed-in role may not record, so the forms shown here
// (GET /api/me `may_record`) are a convenience, never the rule.
//
// A form fixes its fact's `id` (and `source` "console") when it opens: sending it twice, a
// double click or a retry after a lost answer, records it once (the ledger counts the second
// as a duplicate of the same source and id).

import { api, ApiError, channelName, DEPARTMENTS, deptName, enc, h, networkName, REASONS, svg } from "./lib.js";

const SOURCE = "console";
const AGENT_KEY = "journey.console.agent";
const STORE_KEY = "journey.console.store";


const PURPOSES = [["commercial", "Sales / offers (commercial)"], ["service", "Service (bills, the line, a case)"]];
const CONSENT_CHANNELS = [["phone", "Phone"], ["sms", "SMS"], ["email", "E-mail"], ["letter", "Letter"],
  ["social", "Social"], ["any", "All channels"]];
const OBJECTION_CHANNELS = CONSENT_CHANNELS.filter(([c]) => c !== "any");
const OUTCOMES = [["", "—"], ["answered", "answered"], ["no_answer", "no answer"], ["voicemail", "voicemail"],
  ["not_interested", "not interested"], ["knows_offers", "already knows the offers"], ["hung_up", "hung up"],
  ["sale", "sale"]];
const CASE_KINDS = [["complaint", "Complaint (must be answered within the legal deadline)"],
  ["incident", "Incident (something does not work)"], ["request", "Request"], ["warranty", "Warranty"]];
const ANSWERS = [["", "no structured answer"], ["yes", "Yes: we will do it"], ["no", "No: we will not"],
  ["partial", "Partly"], ["info", "Information only"]];
// The outbound contacts the contact policy judges, and the channel it judges each on.
const OUTBOUND = { "call.outbound": "phone", "email.sent": "email", "sms.sent": "sms", "letter.sent": "letter" };

let ctx = { me: null, reload: () => {} };
let toastTimer = null;

/** Who is signed in, and how the current page reloads its data after a fact is recorded. */
export function configureForms(me, reload) {
  ctx = { me, reload: reload || (() => {}) };
}

/** May the signed-in role record facts of this type (GET /api/me `may_record`)? */
export function mayRecord(type) {
  const me = ctx.me;
  return !!(me && Array.isArray(me.may_record) && me.may_record.includes(type));
}

function mayAny(types) {
  return types.some(mayRecord);
}

// ---------------------------------------------------------------- hooks the pages call

/** The customer page's "Record" panel: one button per form the role may submit; null if none. */
export function customerForms(view) {
  if (!view || !view.customer_id || view.forgotten) return null;
  const who = { customer_id: view.customer_id };
  const cases = (Array.isArray(view.cases) ? view.cases : []).filter((c) => c.status !== "resolved" && c.status !== "closed");
  const serials = (Array.isArray(view.products) ? view.products : []).map((p) => p.serial).filter((s) => typeof s === "string" && s);
  const buttons = [
    opener("rec-objection", "objection", "Objection", objectionForm(who)),
    opener("rec-consent", "consent", "Consent", consentForm(who)),
    opener("rec-call", "phone", "Call", callForm(who)),
    opener("rec-message", "email", "Message", messageForm(who)),
    opener("rec-promise", "promise", "Promise", promiseForm(who, cases)),
    opener("rec-visit", "store", "Store visit", visitForm(who)),
    opener("rec-claim", "warranty", "Warranty claim", claimForm(who, serials)),
    opener("rec-address", "address", "Address", addressForm(who)),
    opener("rec-case", "case", "Open a case", caseOpenForm(who)),
  ].filter(Boolean);
  if (!buttons.length) return null;
  return h("section.panel.record-panel#record", { "aria-label": "record what happens" },
    h("h2", svg("decision", "icon"), " Record"),
    h("p.small.muted", "What the customer says or what you did, now: it goes on the history every department reads."),
    h("div.record-buttons", buttons));
}

/** The case page's panel: note, answer, transfer, resolve or reopen; null if none is allowed. */
export function caseForms(c) {
  const cust = (c && c.customer) || {};
  if (!c || !c.case_id || !cust.customer_id) return null;
  const who = { customer_id: cust.customer_id };
  const open = c.status !== "resolved" && c.status !== "closed";
  const buttons = [
    opener("case-note", "case", "Note", noteForm(who, c)),
    opener("case-respond", "email", "Answer the customer", respondForm(who, c)),
    open ? opener("case-transfer", "arrow", "Transfer", transferForm(who, c)) : null,
    open ? opener("case-resolve", "promise", "Resolve", resolveForm(who, c)) : null,
    open ? null : opener("case-reopen", "late", "Reopen", reopenForm(who, c)),
  ].filter(Boolean);
  if (!buttons.length) return null;
  return h("section.panel.record-panel#case-record", { "aria-label": "work on this case" },
    h("h2", svg("decision", "icon"), " Work on this case"),
    h("div.record-buttons", buttons));
}

/** "Kept" and "Broken" for an open promise (a row of the promises list or of the customer page). */
export function promiseActions(p, customerId) {
  if (!p || !p.promise_id || !customerId || p.status !== "open") return null;
  const who = { customer_id: customerId };
  const buttons = [
    opener(null, "promise", "Kept", promiseCloseForm(who, p, "promise.kept"), "small", { "data-promise": p.promise_id, "data-action": "kept" }),
    opener(null, "objection", "Broken", promiseCloseForm(who, p, "promise.broken"), "small", { "data-promise": p.promise_id, "data-action": "broken" }),
  ].filter(Boolean);
  return buttons.length ? h("span.row-actions", buttons) : null;
}

/** "Decide" for a warranty claim nobody decided yet (the technical service). */
export function claimActions(c, customerId) {
  if (!c || !c.claim_id || !customerId || c.status !== "open") return null;
  const button = opener(null, "decision", "Decide", decideForm({ customer_id: customerId }, c), "small", { "data-claim": c.claim_id });
  return button ? h("span.row-actions", button) : null;
}

/** "Reply" for a social mention nobody answered (the social desk). */
export function mentionActions(m, customerId) {
  if (!m || !m.event_id || !customerId) return null;
  const button = opener(null, "social", "Reply", replyForm({ customer_id: customerId }, m), "small", { "data-mention": m.event_id });
  return button ? h("span.row-actions", button) : null;
}

/** A button that opens `form` (null when the role may record none of its types). */
function opener(id, icon, label, form, size = "", attrs = {}) {
  if (!form || !mayAny(form.types)) return null;
  return h(`button.record-button${size ? "." + size : ""}${id ? "#" + id : ""}`, {
    type: "button", "aria-haspopup": "dialog", ...attrs, onclick: () => openForm(form),
  }, svg(icon, "icon"), ` ${label}`);
}

// ---------------------------------------------------------------- the forms

function objectionForm(who) {
  return {
    key: "objection", types: ["objection.recorded"], customer: who,
    title: "The customer objects to being contacted",
    intro: "GDPR art. 21: from now on nobody may contact them for this purpose on these channels, until they give consent again.",
    fields: [
      { name: "channels", label: "On which channels", kind: "checks", path: "data.channels", options: OBJECTION_CHANNELS,
        all: "every channel", help: "Leave every box empty for every channel." },
      { name: "purpose", label: "For what", kind: "radio", path: "data.purpose", options: PURPOSES, value: "commercial" },
      { name: "evidence", label: "The customer’s own words", kind: "textarea", path: "data.evidence", required: true,
        placeholder: "“Don’t call me again with offers.”", help: "Write down what they said, as they said it: it is the proof of the objection." },
    ],
    build: (v) => ({ type: "objection.recorded",
      data: { channels: v.channels.length ? v.channels : "all", purpose: v.purpose, evidence: v.evidence } }),
  };
}

function consentForm(who) {
  const types = ["consent.given", "consent.withdrawn"];
  return {
    key: "consent", types, customer: who, title: "Consent",
    intro: "Record what the customer agreed to, or takes back, for one channel and purpose.",
    fields: [
      { name: "state", label: "The customer", kind: "radio", path: "type", value: "consent.given",
        options: [["consent.given", "gives consent"], ["consent.withdrawn", "withdraws consent"]].filter(([t]) => mayRecord(t)) },
      { name: "channel", label: "Channel", kind: "select", path: "data.channel", options: CONSENT_CHANNELS, value: "phone" },
      { name: "purpose", label: "Purpose", kind: "radio", path: "data.purpose", options: PURPOSES, value: "commercial" },
      { name: "text", label: "What they agreed to (the wording you read or showed them)", kind: "textarea", path: "data.text",
        required: (v) => v.state === "consent.given", placeholder: "Acepto recibir ofertas por teléfono" },
      { name: "evidence", label: "The customer’s own words", kind: "textarea", path: "data.evidence",
        placeholder: "“Yes, you may call me about offers.”", help: "What they said, and how (on a recorded call, in the store, signed)." },
    ],
    build: (v) => ({ type: v.state, data: { channel: v.channel, purpose: v.purpose, text: v.text || null, evidence: v.evidence || null } }),
  };
}

function callForm(who) {
  const directions = [["call.outbound", "We called the customer"], ["call.inbound", "The customer called us"]].filter(([t]) => mayRecord(t));
  return {
    key: "call", types: ["call.outbound", "call.inbound"], customer: who, title: "Log a call",
    fields: [
      { name: "direction", label: "Who called", kind: "radio", path: "type", options: directions, value: directions[0] && directions[0][0] },
      { name: "purpose", label: "Purpose", kind: "radio", path: "data.purpose", options: PURPOSES, value: "service",
        show: (v) => v.direction === "call.outbound" },
      { name: "campaign", label: "Campaign", kind: "text", path: "data.campaign", placeholder: "fibra-autumn",
        show: (v) => v.direction === "call.outbound" },
      { name: "outcome", label: "Outcome", kind: "select", path: "data.outcome", options: OUTCOMES,
        show: (v) => v.direction === "call.outbound" },
      { name: "reason", label: "What they called about", kind: "textarea", path: "data.reason",
        show: (v) => v.direction === "call.inbound" },
      { name: "minutes", label: "Duration (minutes)", kind: "number", path: "data.duration_s", attrs: { min: "0", step: "1" } },
    ],
    verdict: (v) => (v.direction === "call.outbound" ? { type: "call.outbound", purpose: v.purpose, campaign: v.campaign } : null),
    build: (v) => {
      const duration = v.minutes === "" ? null : Math.round(Number(v.minutes) * 60);
      const data = v.direction === "call.outbound"
        ? { purpose: v.purpose, campaign: v.campaign || null, outcome: v.outcome || null, duration_s: duration }
        : { reason: v.reason || null, duration_s: duration };
      return { type: v.direction, data };
    },
  };
}

function messageForm(who) {
  const kinds = [["email.sent", "We e-mailed the customer"], ["sms.sent", "We sent an SMS"],
    ["letter.sent", "We sent a letter"], ["email.received", "The customer e-mailed us"]].filter(([t]) => mayRecord(t));
  return {
    key: "message", types: ["email.sent", "sms.sent", "letter.sent", "email.received"], customer: who,
    title: "Log a message",
    fields: [
      { name: "kind", label: "What", kind: "select", path: "type", options: kinds, value: kinds[0] && kinds[0][0] },
      { name: "purpose", label: "Purpose", kind: "radio", path: "data.purpose", options: PURPOSES, value: "service" },
      { name: "subject", label: "Subject", kind: "text", path: "data.subject" },
    ],
    verdict: (v) => (v.kind in OUTBOUND ? { type: v.kind, purpose: v.purpose, campaign: "" } : null),
    build: (v) => ({ type: v.kind, data: { purpose: v.purpose, subject: v.subject || null } }),
  };
}

function promiseForm(who, openCases) {
  return {
    key: "promise", types: ["promise.made"], customer: who, title: "Make a promise",
    intro: "One department’s promise is the company’s promise: it stays on the promises list until somebody marks it kept or broken.",
    fields: [
      { name: "what", label: "What is promised", kind: "text", path: "data.what", required: true, placeholder: "refund the duplicate charge" },
      { name: "due", label: "Due by", kind: "date", path: "data.due_by", required: true, value: dayFromNow(7) },
      { name: "case", label: "On case", kind: "select", path: "data.case_id",
        options: [["", "no case"], ...openCases.map((c) => [c.case_id, `${c.case_id}${c.subject && typeof c.subject === "string" ? " — " + c.subject : ""}`])] },
      { name: "topic", label: "Topic (optional)", kind: "text", path: "data.topic", placeholder: "refund",
        help: "What the promise says yes to: an answer “no” on the same case and topic is flagged as a contradiction." },
      { name: "promise_id", label: "Promise number", kind: "text", path: "data.promise_id", required: true, value: `P-${code(8)}` },
    ],
    build: (v) => ({ type: "promise.made",
      data: { promise_id: v.promise_id, what: v.what, due_by: v.due, case_id: v.case || null, topic: v.topic || null } }),
  };
}

function promiseCloseForm(who, p, type) {
  const kept = type === "promise.kept";
  return {
    key: kept ? "promise-kept" : "promise-broken", types: [type], customer: who,
    title: kept ? `Promise ${p.promise_id} kept` : `Promise ${p.promise_id} broken`,
    intro: [p.what && typeof p.what === "string" ? `“${p.what}”` : "", p.due_by ? ` due ${p.due_by}` : ""].join(""),
    fields: [],
    submit: kept ? "Mark kept" : "Mark broken",
    build: () => ({ type, data: { promise_id: p.promise_id } }),
  };
}

function visitForm(who) {
  return {
    key: "visit", types: ["store.visit"], customer: who, title: "Store visit",
    fields: [
      { name: "store", label: "Store", kind: "text", path: "data.store", required: true, value: remembered(STORE_KEY), placeholder: "MAD01" },
      { name: "reason", label: "Why they came", kind: "textarea", path: "data.reason" },
    ],
    remember: (v) => remember(STORE_KEY, v.store),
    build: (v) => ({ type: "store.visit", data: { store: v.store, reason: v.reason || null } }),
  };
}

function claimForm(who, serials) {
  return {
    key: "claim", types: ["warranty.claim_filed"], customer: who, title: "Warranty claim",
    intro: "The purchase is in the ledger: no paper invoice needed. The technical service decides the claim.",
    fields: [
      { name: "serial", label: "Serial number", kind: "text", path: "data.serial", required: true, suggestions: serials,
        value: serials.length === 1 ? serials[0] : "" },
      { name: "issue", label: "What is wrong", kind: "textarea", path: "data.issue" },
      { name: "claim_id", label: "Claim number", kind: "text", path: "data.claim_id", required: true, value: `W-${code(8)}` },
    ],
    build: (v) => ({ type: "warranty.claim_filed", data: { claim_id: v.claim_id, serial: v.serial, issue: v.issue || null } }),
  };
}

function decideForm(who, c) {
  // The customer view says `in_warranty`, the warranty lookup `in_warranty_when_filed`.
  const inWarranty = "in_warranty_when_filed" in c ? c.in_warranty_when_filed : c.in_warranty;
  return {
    key: "decide", types: ["warranty.claim_decided"], customer: who, title: `Decide claim ${c.claim_id}`,
    intro: [c.serial ? `Serial ${c.serial}` : "", c.issue && typeof c.issue === "string" ? ` — “${c.issue}”` : "",
      inWarranty === true ? " · in warranty when filed" : inWarranty === false ? " · NOT in warranty when filed" : ""].join(""),
    fields: [
      { name: "approved", label: "Decision", kind: "radio", path: "data.approved", required: true,
        options: [["yes", "Approve the claim"], ["no", "Refuse the claim"]] },
      { name: "reason", label: "Why", kind: "textarea", path: "data.reason", required: true },
    ],
    build: (v) => ({ type: "warranty.claim_decided", data: { claim_id: c.claim_id, approved: v.approved === "yes", reason: v.reason } }),
  };
}

function addressForm(who) {
  return {
    key: "address", types: ["address.changed"], customer: who, title: "Correct the postal address",
    intro: "A change the customer did not ask for is notified to them by letter, at the old and the new address.",
    fields: [
      { name: "street", label: "Street", kind: "text", path: "data.address.street", required: true },
      { name: "number", label: "Number", kind: "text", path: "data.address.number" },
      { name: "postal_code", label: "Postal code", kind: "text", path: "data.address.postal_code", required: true, attrs: { inputmode: "numeric" } },
      { name: "city", label: "City", kind: "text", path: "data.address.city", required: true },
      { name: "requested_by", label: "Who asked for the change", kind: "radio", path: "data.requested_by", required: true,
        options: [["customer", "the customer"], ["company", "the company (we found it wrong)"], ["third_party", "somebody else (a courier, a relative)"]] },
      { name: "reason", label: "Why", kind: "textarea", path: "data.reason", required: true, placeholder: "returned letter: street number wrong" },
    ],
    build: (v) => ({ type: "address.changed", data: {
      address: { street: v.street, number: v.number || null, postal_code: v.postal_code, city: v.city },
      requested_by: v.requested_by, reason: v.reason } }),
  };
}

function caseOpenForm(who) {
  return {
    key: "case", types: ["case.opened"], customer: who, title: "Open a case",
    fields: [
      { name: "kind", label: "Kind", kind: "select", path: "data.kind", options: CASE_KINDS, value: "complaint" },
      { name: "subject", label: "Subject", kind: "text", path: "data.subject", required: true, placeholder: "charged twice in April" },
      { name: "case_id", label: "Case number", kind: "text", path: "data.case_id", required: true, value: `K-${code(8)}`,
        help: "Give the customer this number or the tracking key the case page shows." },
    ],
    build: (v) => ({ type: "case.opened", data: { case_id: v.case_id, kind: v.kind, subject: v.subject } }),
  };
}

function noteForm(who, c) {
  return {
    key: "note", types: ["case.note"], customer: who, title: `Note on case ${c.case_id}`,
    intro: "An internal note: the customer does not see it.",
    fields: [{ name: "text", label: "Note", kind: "textarea", path: "data.text", required: true }],
    build: (v) => ({ type: "case.note", data: { case_id: c.case_id, text: v.text } }),
  };
}

function respondForm(who, c) {
  return {
    key: "respond", types: ["case.responded"], customer: who, title: `Answer on case ${c.case_id}`,
    intro: "What you told the customer. Say yes or no as well: a yes and a no on the same topic from two departments show as a contradiction.",
    fields: [
      { name: "text", label: "What you told the customer", kind: "textarea", path: "data.text", required: true },
      { name: "answer", label: "The answer", kind: "select", path: "data.answer", options: ANSWERS },
      { name: "topic", label: "Topic (optional)", kind: "text", path: "data.topic", placeholder: "refund",
        help: "Leave it empty when the answer is about the case itself." },
    ],
    build: (v) => ({ type: "case.responded", data: { case_id: c.case_id, text: v.text, answer: v.answer || null, topic: v.topic || null } }),
  };
}

function transferForm(who, c) {
  const others = Object.keys(DEPARTMENTS).filter((d) => d !== c.owner_department);
  return {
    key: "transfer", types: ["case.transferred"], customer: who, title: `Transfer case ${c.case_id}`,
    intro: `Now with ${deptName(c.owner_department)}.`,
    fields: [
      { name: "to", label: "To", kind: "select", path: "data.to", required: true,
        options: [["", "choose a department"], ...others.map((d) => [d, deptName(d)])] },
      { name: "reason", label: "Why", kind: "textarea", path: "data.reason", required: true, placeholder: "refunds are billing’s" },
    ],
    build: (v) => ({ type: "case.transferred", data: { case_id: c.case_id, to: v.to, reason: v.reason } }),
  };
}

function resolveForm(who, c) {
  return {
    key: "resolve", types: ["case.resolved"], customer: who, title: `Resolve case ${c.case_id}`,
    fields: [{ name: "resolution", label: "How it was resolved", kind: "textarea", path: "data.resolution", required: true }],
    build: (v) => ({ type: "case.resolved", data: { case_id: c.case_id, resolution: v.resolution } }),
  };
}

function reopenForm(who, c) {
  return {
    key: "reopen", types: ["case.reopened"], customer: who, title: `Reopen case ${c.case_id}`,
    intro: "The case opens again; its clocks keep counting from when it was opened.", fields: [], submit: "Reopen",
    build: () => ({ type: "case.reopened", data: { case_id: c.case_id } }),
  };
}

function replyForm(who, m) {
  return {
    key: "reply", types: ["social.reply"], customer: who, title: `Reply on ${networkName(m.network)}`,
    intro: m.text && typeof m.text === "string" ? `${m.handle && typeof m.handle === "string" ? m.handle + ": " : ""}“${m.text}”` : "",
    fields: [{ name: "text", label: "Your reply (as posted on the network)", kind: "textarea", path: "data.text", required: true }],
    submit: "Record the reply",
    build: (v) => ({ type: "social.reply", data: { in_reply_to: m.event_id, text: v.text } }),
  };
}

// ---------------------------------------------------------------- the dialog

function openForm(spec) {
  const factId = `${SOURCE}-${Date.now().toString(36)}-${code(10)}`;
  const me = ctx.me || {};
  const fixedDept = me.department || (me.role in DEPARTMENTS ? me.role : null);
  const fields = [...spec.fields,
    { name: "agent", label: "You (agent code)", kind: "text", path: "agent", required: true, value: remembered(AGENT_KEY),
      attrs: { autocomplete: "off" }, help: "Filled in once on this device.", meta: true },
    { name: "occurred_at", label: "When it happened", kind: "datetime", path: "occurred_at", required: true, value: localNow(), meta: true },
    fixedDept
      ? { name: "department", label: "Department", kind: "fixed", path: "department", value: fixedDept, meta: true }
      : { name: "department", label: "Department", kind: "select", path: "department", meta: true,
        options: [["", "none"], ...Object.keys(DEPARTMENTS).map((d) => [d, deptName(d)])] },
  ];
  const titleId = `form-title-${spec.key}`;
  const general = h("p.form-error.general-error", { role: "alert", "data-for": "" });
  const submit = h("button.primary.record-submit", { type: "submit" }, spec.submit || "Record");
  const verdictBox = h("div.form-verdict", { "aria-live": "polite", hidden: true });
  const rows = new Map();
  const form = h(`form.record-form#form-${spec.key}`, { "data-fact-id": factId });
  const close = () => { dialog.close(); };
  const dialog = h("dialog.record-dialog", { "aria-labelledby": titleId, "data-form": spec.key }, form);
  const main = fields.filter((f) => !f.meta).map((f) => fieldRow(f, rows));
  const meta = fields.filter((f) => f.meta).map((f) => fieldRow(f, rows));
  form.append(...[
    h("div.record-head", h("h2", { id: titleId }, spec.title),
      h("button.icon-button.record-close", { type: "button", "aria-label": "Close", onclick: close }, "×")),
    spec.intro ? h("p.record-intro", spec.intro) : null,
    ...main,
    verdictBox,
    h("fieldset.record-meta", h("legend", "Who and when"), ...meta),
    general,
    h("div.record-actions", submit, h("button.secondary", { type: "button", onclick: close }, "Cancel")),
  ].filter(Boolean));

  const values = () => {
    const v = {};
    for (const [name, row] of rows) v[name] = row.read();
    return v;
  };
  const refresh = () => {
    const v = values();
    for (const [, row] of rows) row.update(v);
    verdict.check(v);
  };
  const verdict = verdictWatch(spec, verdictBox);
  form.addEventListener("input", debounce(refresh, 250));
  form.addEventListener("change", refresh);

  let busy = false;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    busy = true;
    submit.disabled = true;
    const label = submit.textContent;
    submit.textContent = "Recording…";
    try {
      await send();
    } finally {
      busy = false;
      submit.disabled = false;
      submit.textContent = label;
    }
  });

  async function send() {
    for (const [, row] of rows) row.error("");
    general.textContent = "";
    const v = values();
    const check = await verdict.settled(v);
    if (check && !check.confirmed) {
      verdict.ask();
      return;
    }
    const built = spec.build(v);
    const fact = {
      type: built.type, id: factId, source: SOURCE, customer: spec.customer,
      occurred_at: withOffset(v.occurred_at), agent: v.agent,
      data: withoutNulls(built.data),
    };
    if (v.department) fact.department = v.department;
    let answer;
    try {
      answer = await api("/api/facts", { method: "POST", body: fact });
    } catch (err) {
      showRejection(err);
      return;
    }
    remember(AGENT_KEY, v.agent);
    if (spec.remember) spec.remember(v);
    dialog.close();
    toast(answer && answer.duplicates ? `${spec.title}: already recorded.` : `Recorded: ${spec.title.toLowerCase()}.`, built.type);
    // The page reads its data again; the agent stays where they were on it (a row far down a list).
    const y = window.scrollY;
    Promise.resolve(ctx.reload()).then(() => window.scrollTo(0, y), () => {});
  }

  function showRejection(err) {
    const rejected = err instanceof ApiError && err.body && err.body.detail && Array.isArray(err.body.detail.rejected)
      ? err.body.detail.rejected : null;
    if (!rejected || !rejected.length) {
      general.textContent = err instanceof ApiError && err.status === 401
        ? "Your session has ended: sign in again in another tab, then record again (what you typed is kept)."
        : `Not recorded: ${err.message}`;
      return;
    }
    let first = null;
    for (const r of rejected) {
      const reason = String(r.reason || "");
      const row = rowFor(reason, rows);
      if (row) {
        row.error(reason);
        first = first || row;
      } else {
        general.textContent = `Not recorded: ${reason}`;
      }
    }
    if (first) first.focus();
  }

  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  refresh();
  const firstInput = form.querySelector(".record-field:not([hidden]) input, .record-field:not([hidden]) textarea, .record-field:not([hidden]) select");
  if (firstInput) firstInput.focus();
  return dialog;
}

/** The row whose field the reason names ("data.address.city: ..." -> the city, or the address). */
function rowFor(reason, rows) {
  const m = /^([A-Za-z_][\w.[\]]*):\s/.exec(reason);
  if (!m) return null;
  let path = m[1].replace(/\[\d+\]/g, "");
  while (path) {
    for (const [, row] of rows) if (row.path === path && row.visible()) return row;
    const cut = path.lastIndexOf(".");
    if (cut < 0) break;
    path = path.slice(0, cut);
  }
  return null;
}

/** One labelled field (label above it, its help and its error below). */
function fieldRow(f, rows) {
  const id = `f-${f.name}-${code(4)}`;
  const errId = `${id}-error`;
  const helpId = `${id}-help`;
  const described = [f.help ? helpId : null, errId].filter(Boolean).join(" ");
  const error = h("p.field-error", { id: errId, role: "alert", "data-for": f.path });
  let control;
  let read;
  let focusable;
  const required = typeof f.required === "function" ? false : !!f.required;
  if (f.kind === "radio" || f.kind === "checks") {
    const type = f.kind === "radio" ? "radio" : "checkbox";
    const inputs = f.options.map(([value, label]) => h("label.choice",
      h("input", { type, name: id, value, checked: f.kind === "radio" ? value === f.value : false, required: type === "radio" && required }),
      ` ${label}`));
    control = h("div.choices", { role: type === "radio" ? "radiogroup" : "group", "aria-labelledby": `${id}-label`, "aria-describedby": described }, inputs);
    const boxes = () => [...control.querySelectorAll("input")];
    read = () => (f.kind === "radio" ? (boxes().find((b) => b.checked) || { value: "" }).value : boxes().filter((b) => b.checked).map((b) => b.value));
    focusable = () => boxes()[0];
  } else if (f.kind === "fixed") {
    control = h("p.fixed-value", { id, "aria-describedby": described }, deptName(f.value));
    read = () => f.value;
    focusable = () => control;
    control.tabIndex = -1;
  } else {
    const common = { id, name: f.name, required, "aria-describedby": described, placeholder: f.placeholder || null, ...(f.attrs || {}) };
    if (f.kind === "textarea") control = h("textarea", { ...common, rows: "3" });
    else if (f.kind === "select") control = h("select", common, f.options.map(([value, label]) => h("option", { value }, label)));
    else if (f.kind === "date") control = h("input", { ...common, type: "date" });
    else if (f.kind === "datetime") control = h("input", { ...common, type: "datetime-local", step: "60" });
    else if (f.kind === "number") control = h("input", { ...common, type: "number" });
    else control = h("input", { ...common, type: "text" });
    if (f.suggestions && f.suggestions.length) {
      const listId = `${id}-list`;
      control.setAttribute("list", listId);
      control = h("span.with-list", control, h("datalist", { id: listId }, f.suggestions.map((s) => h("option", { value: s }))));
    }
    const input = control.matches("span") ? control.querySelector("input") : control;
    if (f.value !== undefined && f.value !== null) input.value = f.value;
    read = () => (f.kind === "select" || f.kind === "text" || f.kind === "textarea" ? input.value.trim() : input.value);
    focusable = () => input;
  }
  const wrap = h(`div.record-field.field-${f.name}`, { "data-path": f.path },
    f.kind === "radio" || f.kind === "checks" || f.kind === "fixed"
      ? h("span.field-label", { id: `${id}-label` }, f.label, required ? h("span.req", { "aria-hidden": "true" }, " *") : null)
      : h("label.field-label", { for: id, id: `${id}-label` }, f.label, required ? h("span.req", { "aria-hidden": "true" }, " *") : null),
    control,
    f.help ? h("p.field-help", { id: helpId }, f.help) : null,
    error);
  const row = {
    path: f.path,
    read: () => (wrap.hidden ? (f.kind === "checks" ? [] : "") : read()),
    visible: () => !wrap.hidden,
    update(v) {
      wrap.hidden = f.show ? !f.show(v) : false;
      if (typeof f.required === "function") {
        const need = !wrap.hidden && f.required(v);
        const input = focusable();
        if (input && "required" in input) input.required = need;
        const star = wrap.querySelector(".field-label .req");
        if (need && !star) wrap.querySelector(".field-label").append(h("span.req", { "aria-hidden": "true" }, " *"));
        if (!need && star) star.remove();
      }
    },
    error(text) {
      error.textContent = text;
      wrap.classList.toggle("invalid", !!text);
      for (const el of wrap.querySelectorAll("input, textarea, select")) {
        if (text) el.setAttribute("aria-invalid", "true");
        else el.removeAttribute("aria-invalid");
      }
    },
    focus() { const el = focusable(); if (el && el.focus) el.focus(); },
  };
  rows.set(f.name, row);
  return wrap;
}

// ---------------------------------------------------------------- the contact verdict in a form

/**
 * Before an outbound commercial contact (or one for a campaign) is logged, the form asks the
 * contact policy the question the verdict banner asks, at the instant the contact happened, and
 * shows the answer; when it says no (or cannot say), the agent must confirm before recording.
 */
function verdictWatch(spec, box) {
  let asked = "";
  let state = null; // { key, promise, doc|error, confirm element }
  const question = (v) => {
    const q = spec.verdict ? spec.verdict(v) : null;
    if (!q || !(q.type in OUTBOUND)) return null;
    if (q.purpose !== "commercial" && !q.campaign) return null;
    return { channel: OUTBOUND[q.type], purpose: q.purpose, campaign: q.campaign || "", at: withOffset(v.occurred_at) };
  };
  const url = (q) => {
    const qs = new URLSearchParams({ channel: q.channel, purpose: q.purpose });
    if (q.campaign) qs.set("campaign", q.campaign);
    if (q.at && /[+-]\d\d:\d\d$/.test(q.at)) qs.set("at", q.at);
    return `/api/customers/${enc(spec.customer.customer_id)}/can-contact?${qs}`;
  };
  function check(v) {
    const q = question(v);
    const key = q ? JSON.stringify(q) : "";
    if (key === asked) return;
    asked = key;
    if (!q) {
      state = null;
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    box.hidden = false;
    box.className = "form-verdict checking";
    box.replaceChildren(h("p.loading", `Checking whether we may contact them (${channelName(q.channel)}, ${q.purpose})…`));
    const mine = { key, q };
    state = mine;
    mine.promise = api(url(q)).then((doc) => { mine.doc = doc; }, (err) => { mine.error = err; })
      .then(() => { if (state === mine) draw(mine); });
  }
  function draw(s) {
    const ok = s.doc && s.doc.allowed === true;
    const reasons = s.doc && Array.isArray(s.doc.reasons) ? s.doc.reasons : [];
    box.className = `form-verdict ${ok ? "ok" : s.doc ? "no" : "unknown"}`;
    box.dataset.verdict = ok ? "allowed" : s.doc ? "denied" : "unknown";
    const head = ok ? `ALLOWED: we may contact them (${channelName(s.q.channel)}, ${s.q.purpose})`
      : s.doc ? `DENIED: we may not contact them (${channelName(s.q.channel)}, ${s.q.purpose})`
        : `The contact policy could not be asked: ${s.error ? s.error.message : "no answer"}`;
    s.confirm = ok ? null : h("input.verdict-confirm", { type: "checkbox", required: true, id: `confirm-${code(4)}` });
    box.replaceChildren(
      h("p.form-verdict-head", { role: "status" }, svg(ok ? "consent" : "objection", "icon"), " ", head),
      reasons.length ? h("ul.form-verdict-reasons", reasons.map((r) => h("li", h("b", REASONS[r.code] || r.code), r.message ? `: ${r.message}` : ""))) : null,
      s.confirm ? h("label.confirm-line", { for: s.confirm.id }, s.confirm,
        " The verdict says no. I confirm this contact happened anyway: it will show as a breach of the contact policy.") : null,
      s.confirm ? h("p.field-error.confirm-error", { role: "alert" }) : null);
  }
  return {
    check,
    /** The verdict for the values about to be sent: null (no question), or {confirmed}. */
    async settled(v) {
      check(v);
      if (!state) return null;
      await state.promise;
      const ok = state.doc && state.doc.allowed === true;
      return { confirmed: ok || !!(state.confirm && state.confirm.checked) };
    },
    ask() {
      const err = box.querySelector(".confirm-error");
      if (err) err.textContent = "Tick the box to confirm, or cancel: the verdict says no.";
      if (state && state.confirm) state.confirm.focus();
    },
  };
}

// ---------------------------------------------------------------- small helpers

function toast(text, type) {
  let el = document.getElementById("record-toast");
  if (!el) {
    el = h("div.record-toast#record-toast", { role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  el.dataset.type = type || "";
  el.replaceChildren(svg("consent", "icon"), ` ${text}`);
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 8000);
}

function withoutNulls(data) {
  const out = {};
  for (const [k, v] of Object.entries(data || {})) {
    if (v === null || v === undefined || v === "") continue;
    if (v && typeof v === "object" && !Array.isArray(v)) out[k] = withoutNulls(v);
    else out[k] = v;
  }
  return out;
}

/** Random letters and digits (Crockford's alphabet: no I, L, O, U to misread). */
function code(n) {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(bytes, (b) => alphabet[b % 32]).join("");
}

const pad = (n) => String(n).padStart(2, "0");

function localNow() {
  const d = new Date();
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function dayFromNow(days) {
  const d = new Date(Date.now() + days * 86400000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** "2026-11-04T11:00" (this browser's local time) as an instant with its UTC offset. */
function withOffset(local) {
  const m = /^(\d{4,}-\d\d-\d\d)T(\d\d:\d\d)(?::(\d\d))?$/.exec(local || "");
  if (!m) return local || "";
  const d = new Date(`${m[1]}T${m[2]}:${m[3] || "00"}`);
  if (Number.isNaN(d.getTime())) return `${m[1]}T${m[2]}:${m[3] || "00"}`;
  const east = -Math.round(d.getTimezoneOffset());
  const sign = east < 0 ? "-" : "+";
  const abs = Math.abs(east);
  return `${m[1]}T${m[2]}:${m[3] || "00"}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

function remembered(key) {
  try { return localStorage.getItem(key) || ""; } catch { return ""; }
}

function remember(key, value) {
  try { if (value) localStorage.setItem(key, value); } catch { /* private mode: ask again next time */ }
}

function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}
