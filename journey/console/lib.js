// Helpers shared by the console pages: DOM building, the API client, times, icons, words.
// Plain ES module, no framework, no build step. Every string from the ledger goes into the
// page as text (never as HTML): tweets and notes are written by strangers.

// ---------------------------------------------------------------- DOM

/** h("div.card#id", {attrs}, ...children): a tiny element builder. */
export function h(spec, attrs, ...children) {
  if (attrs === null || attrs === undefined || typeof attrs !== "object" || attrs instanceof Node
      || Array.isArray(attrs)) {
    if (attrs !== undefined) children.unshift(attrs);
    attrs = {};
  }
  const m = /^([a-z0-9]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const tag = (m && m[1]) || "div";
  const el = document.createElement(tag);
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === ".") el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className += (el.className ? " " : "") + v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

/** Replace an element's children (arrays flattened, like h()). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else if (typeof c === "string" && isMarker(c)) el.appendChild(hiddenTag());
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// ---------------------------------------------------------------- API

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** fetch a JSON document from the API; the session cookie authenticates it. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "The ledger server cannot be reached. Check the connection and try again.");
  }
  let doc = null;
  const text = await res.text();
  if (text) {
    try { doc = JSON.parse(text); } catch { doc = null; }
  }
  if (!res.ok) {
    throw new ApiError(res.status, errorText(doc) || res.statusText || `HTTP ${res.status}`, doc);
  }
  return doc;
}

function errorText(doc) {
  if (!doc || typeof doc !== "object") return "";
  const d = doc.detail ?? doc.error ?? doc.message;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((x) => (x && x.msg) || String(x)).join("; ");
  if (d && typeof d === "object") return d.message || d.reason || "";
  return "";
}

export const enc = encodeURIComponent;

// ---------------------------------------------------------------- hidden personal fields

/** What the API puts in place of a personal value the role may not see (journey/api/policy.py HIDDEN). */
const HIDDEN_MARKERS = new Set(["[hidden]", "[redacted]"]);

/** Is this value hidden for the viewer's role (absent key, or a redaction marker)? */
export function isHidden(obj, key) {
  if (obj === null || obj === undefined || typeof obj !== "object") return false;
  if (!(key in obj)) return true;
  return isMarker(obj[key]);
}

export function isMarker(v) {
  if (typeof v === "string") return HIDDEN_MARKERS.has(v.trim().toLowerCase());
  if (v && typeof v === "object" && !Array.isArray(v)) {
    return v.hidden === true || v.redacted === true;
  }
  return false;
}

export const HIDDEN_WORDS = "(hidden for your role)";

/** A quoted free text, or "hidden for your role", or a muted dash. */
export function quote(v, empty = "—") {
  if (v === null || v === undefined || v === "") return h("span.muted", empty);
  if (isMarker(v)) return hiddenTag();
  return `“${v}”`;
}

/** A reference usable in a link: the first of the values that is present and not hidden. */
export function refOf(...values) {
  for (const v of values) if (typeof v === "string" && v && !isMarker(v)) return v;
  return null;
}

export function hiddenTag(what) {
  return h("span.hidden-field", { title: what ? `${what}: your role may not see it` : "your role may not see it" },
    lockIcon(), " hidden for your role");
}

/** Render obj[key] with fmt, "hidden for your role" when absent, `empty` when null. */
export function field(obj, key, fmt = (v) => v, empty = "not recorded") {
  if (obj === null || obj === undefined) return h("span.muted", empty);
  if (isHidden(obj, key)) return hiddenTag(key);
  const v = obj[key];
  if (v === null || v === undefined || v === "") return h("span.muted", empty);
  return fmt(v);
}

// ---------------------------------------------------------------- times

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** The local date and time as recorded (the UTC offset written in the string). */
export function parts(iso) {
  if (typeof iso !== "string") return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$/.exec(iso.trim());
  if (!m) return null;
  return { y: +m[1], mo: +m[2], d: +m[3], hh: m[4] ?? null, mm: m[5] ?? null,
    off: m[7] === "Z" ? "UTC" : (m[7] ?? ""), day: `${m[1]}-${m[2]}-${m[3]}` };
}

export function dayKey(iso) {
  const p = parts(iso);
  return p ? p.day : "unknown";
}

/** "Monday 2 March 2026" */
export function dayTitle(key) {
  const p = parts(key);
  if (!p) return "Date unknown";
  const wd = new Date(Date.UTC(p.y, p.mo - 1, p.d)).getUTCDay();
  return `${DAYS[wd]} ${p.d} ${MONTHS[p.mo - 1]} ${p.y}`;
}

/** "2 Mar 2026" */
export function shortDate(iso) {
  const p = parts(iso);
  if (!p) return iso ? String(iso) : "—";
  return `${p.d} ${MONTHS[p.mo - 1].slice(0, 3)} ${p.y}`;
}

/** "10:15" (local time as recorded) */
export function clock(iso) {
  const p = parts(iso);
  return p && p.hh !== null ? `${p.hh}:${p.mm}` : "";
}

/** "2 Mar 2026, 10:15" (+ the offset in a tooltip) */
export function when(iso) {
  if (!iso) return h("span.muted", "—");
  const p = parts(iso);
  if (!p) return String(iso);
  const t = p.hh !== null ? `, ${p.hh}:${p.mm}` : "";
  return h("time", { datetime: iso, title: `${iso} (local time as recorded${p.off ? ", UTC" + (p.off === "UTC" ? "" : p.off) : ""})` },
    `${shortDate(iso)}${t}`);
}

export function whenText(iso) {
  const p = parts(iso);
  if (!p) return iso ? String(iso) : "—";
  return `${shortDate(iso)}${p.hh !== null ? `, ${p.hh}:${p.mm}` : ""}`;
}

/** plural(2, "transfer") -> "2 transfers" */
export function plural(n, word, many = word + "s") {
  return `${n} ${n === 1 ? word : many}`;
}

/** 93784 -> "1 day 2 h" */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(+seconds)) return "—";
  let s = Math.abs(+seconds);
  if (s < 60) return "under a minute";
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h${m % 60 ? ` ${m % 60} min` : ""}`;
  const days = Math.floor(hrs / 24);
  if (days < 60) return `${days} days${hrs % 24 ? ` ${hrs % 24} h` : ""}`;
  const months = Math.floor(days / 30.44);
  return `${months} months`;
}

// ---------------------------------------------------------------- words

export const DEPARTMENTS = {
  sales: "Sales",
  customer_care: "Customer care",
  outsourced_callcenter: "Outsourced call centre",
  social_media: "Social media",
  stores: "Stores",
  technical_service: "Technical service",
  billing: "Billing",
};

export function deptName(d) {
  if (!d) return "No department";
  return DEPARTMENTS[d] || String(d).replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

export const CHANNELS = {
  phone: "Phone", sms: "SMS", email: "E-mail", letter: "Letter", social: "Social", store: "In store",
  any: "All channels",
};

export function channelName(c) {
  return CHANNELS[c] || (c ? String(c) : "");
}

const OUTCOMES = {
  answered: "answered", no_answer: "no answer", not_interested: "not interested",
  knows_offers: "already knows the offers", hung_up: "hung up", voicemail: "voicemail", sale: "sale",
};

const NETWORKS = { twitter: "Twitter/X", facebook: "Facebook", instagram: "Instagram" };
export function networkName(n) {
  return NETWORKS[n] || (n ? String(n) : "social");
}

/** How the contact policy's reasons name a channel in a sentence ("contact by e-mail"):
 * domain/contact_policy.py CHANNEL_WORDS. */
const CHANNEL_WORDS = { phone: "phone", sms: "SMS", email: "e-mail", letter: "letter", social: "social media" };
export function channelWords(c) {
  return CHANNEL_WORDS[c] || (c ? String(c) : "");
}

/** "all channels", "phone", "phone and SMS", "phone, SMS and e-mail". */
export function channelsWords(ch) {
  if (ch === "all" || ch === "any" || ch === undefined || ch === null) return "all channels";
  const list = [].concat(ch);
  if (list.includes("any") || list.includes("all")) return "all channels";
  return listed(list.map(channelWords));
}

function listed(words) {
  return words.length < 3 ? words.join(" and ") : `${words.slice(0, -1).join(", ")} and ${words[words.length - 1]}`;
}

const REQUESTERS = { customer: "the customer", company: "the company", third_party: "a third party" };
/** Who asked for a change of contact details, in words. */
export function requesterWords(r) {
  return REQUESTERS[r] || (DEPARTMENTS[r] ? deptName(r).toLowerCase() : String(r || "").replace(/_/g, " "));
}

const KINDS = {
  customer_id: "customer number", national_id: "national id", email: "e-mail", phone: "phone",
  twitter: "Twitter/X", instagram: "Instagram", facebook: "Facebook",
};
/** The kind of an identity, in words ("customer number", "national id"). */
export function kindWords(k) {
  return KINDS[k] || String(k || "").replace(/_/g, " ");
}

const FIELDS = { email: "e-mail", phone: "phone", address: "address" };
/** A contact field's name, in words. */
export function fieldWords(f) {
  return FIELDS[f] || String(f || "").replace(/_/g, " ");
}

function addressWords(a) {
  if (!a || typeof a !== "object") return isMarker(a) ? "(hidden for your role)" : "";
  const line = [a.street, a.number].filter(Boolean).join(" ");
  const city = [a.postal_code, a.city].filter(Boolean).join(" ");
  return [line, city].filter(Boolean).join(", ") || "(address)";
}
export { addressWords };

function q(text, n = 140) {
  if (text === null || text === undefined) return "";
  if (isMarker(text) || text === HIDDEN_WORDS) return HIDDEN_WORDS;
  const s = String(text);
  return `“${s.length > n ? s.slice(0, n - 1) + "…" : s}”`;
}

/** One plain sentence saying what an event was. */
export function describe(type, data) {
  const d = {};
  for (const [k, v] of Object.entries(data && typeof data === "object" ? data : {})) {
    d[k] = isMarker(v) && k !== "address" ? HIDDEN_WORDS : v;
  }
  try {
    return describeInner(type, d);
  } catch {
    return humanType(type);
  }
}

export function humanType(type) {
  return String(type || "event").replace(/[._]/g, " ");
}

function describeInner(type, d) {
  switch (type) {
    case "call.outbound": {
      const bits = [d.purpose === "commercial" ? "sales call" : d.purpose === "service" ? "service call" : "call"];
      if (d.campaign) bits.push(`campaign ${d.campaign}`);
      const out = d.outcome ? ` — ${OUTCOMES[d.outcome] || d.outcome}` : "";
      return `Outbound ${bits.join(", ")}${out}`;
    }
    case "call.inbound":
      return "Customer called" + (d.reason ? `: ${q(d.reason)}` : "");
    case "social.mention":
      return `${networkName(d.network)} mention${d.handle && !isMarker(d.handle) ? ` by ${d.handle}` : ""}: ${q(d.text)}`;
    case "social.reply":
      return `Reply on ${networkName(d.network || "social")}: ${q(d.text)}`;
    case "store.visit":
      return `Visit to store ${d.store || ""}`.trim() + (d.reason ? `: ${d.reason}` : "");
    case "email.sent":
    case "letter.sent":
    case "sms.sent": {
      const what = { "email.sent": "E-mail sent", "letter.sent": "Letter sent", "sms.sent": "SMS sent" }[type];
      return `${what}${d.purpose ? ` (${d.purpose})` : ""}${d.subject ? `: ${q(d.subject)}` : ""}`;
    }
    case "email.received":
      return `E-mail received${d.subject ? `: ${q(d.subject)}` : ""}`;
    case "customer.registered":
      return d.name && !isMarker(d.name) ? `Registered as ${d.name}` : "Registered as a customer";
    case "address.changed": {
      const by = d.requested_by && d.requested_by !== "customer" ? ` — requested by ${requesterWords(d.requested_by)}, not the customer` : "";
      return `Address changed to ${addressWords(d.address)}${d.reason ? ` (${d.reason})` : ""}${by}`;
    }
    case "consent.given":
      return `Consent given: ${channelsWords(d.channel)}, ${d.purpose || ""}`.replace(/, $/, "");
    case "consent.withdrawn":
      return `Consent withdrawn: ${channelsWords(d.channel)}, ${d.purpose || ""}`.replace(/, $/, "");
    case "objection.recorded":
      return `OBJECTION: no ${d.purpose || "commercial"} contact on ${channelsWords(d.channels)}`;
    case "purchase.recorded":
      return `Bought ${d.product || "a product"}${d.serial ? ` (serial ${d.serial})` : ""}${d.store ? ` at ${d.store}` : ""}`;
    case "warranty.claim_filed":
      return `Warranty claim ${d.claim_id || ""} filed for ${d.serial || "a product"}${d.issue ? `: ${d.issue}` : ""}`;
    case "warranty.claim_decided":
      return `Warranty claim ${d.claim_id || ""} ${d.approved ? "approved" : "refused"}${d.reason ? ` (${d.reason})` : ""}`;
    case "promise.made":
      return `Promised ${q(d.what)}${d.due_by ? ` by ${shortDate(d.due_by)}` : ""}`;
    case "promise.kept":
      return `Promise ${d.promise_id || ""} kept`;
    case "promise.broken":
      return `Promise ${d.promise_id || ""} BROKEN`;
    case "identity.linked":
      return `Linked ${kindWords(d.kind)} ${isMarker(d.value) ? "(hidden)" : d.value ?? ""}`;
    case "identity.unlinked":
      return `${kindWords(d.kind).replace(/^./, (c) => c.toUpperCase())} ${isMarker(d.value) ? "(hidden)" : d.value ?? ""} moved to another customer`;
    case "customer.merged":
      return `Another record of the same person was merged in${d.reason ? ` (${d.reason})` : ""}`;
    case "customer.unmerged":
      return `A wrongly merged record was split off${d.reason ? ` (${d.reason})` : ""}`;
    case "customer.forgotten":
      return "Personal data erased (GDPR art. 17)";
    case "contact.decided": {
      const verdict = d.allowed ? "ALLOWED" : "DENIED";
      return `Asked whether we may contact (${channelName(d.channel)}, ${d.purpose || ""}): ${verdict}`;
    }
    case "contract.started":
      return `Contract ${d.contract_id || ""} started${d.service ? ` (${d.service})` : ""}`;
    case "contract.ended":
      return `Contract ${d.contract_id || ""} ended${d.service ? ` (${d.service})` : ""}`;
    case "case.opened":
      return `Case ${d.case_id || ""} opened (${d.kind || "case"})${d.subject ? `: ${q(d.subject)}` : ""}`;
    case "case.transferred":
      return `Case ${d.case_id || ""} transferred to ${deptName(d.to)}${d.reason ? ` — ${d.reason}` : ""}`;
    case "case.note":
      return `Note on case ${d.case_id || ""}: ${q(d.text)}`;
    case "case.responded":
      return `Answer on case ${d.case_id || ""}${d.answer ? ` (${d.answer.toUpperCase()})` : ""}: ${q(d.text)}`;
    case "case.resolved":
      return `Case ${d.case_id || ""} resolved${d.resolution ? `: ${q(d.resolution)}` : ""}`;
    case "case.reopened":
      return `Case ${d.case_id || ""} reopened${d.reason ? `: ${d.reason}` : ""}`;
    default:
      return humanType(type);
  }
}

// ---------------------------------------------------------------- icons (inline SVG)

const P = {
  phone: '<path d="M5 3h4l2 5-2.5 1.5a12 12 0 0 0 6 6L16 13l5 2v4a2 2 0 0 1-2 2A17 17 0 0 1 3 5a2 2 0 0 1 2-2z"/>',
  sms: '<path d="M4 4h16v12H9l-5 4z"/><path d="M8 10h.01M12 10h.01M16 10h.01"/>',
  email: '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="M3 7l9 6 9-6"/>',
  letter: '<path d="M6 2h9l5 5v15H6z"/><path d="M14 2v6h6"/><path d="M9 13h8M9 17h8"/>',
  social: '<path d="M5 9h15M4 15h15M10 3 8 21M16 3l-2 18"/>',
  store: '<path d="M3 9l2-5h14l2 5"/><path d="M4 9v11h16V9"/><path d="M9 20v-6h6v6"/>',
  any: '<circle cx="12" cy="12" r="9"/><path d="M3 12h18M12 3a14 14 0 0 1 0 18M12 3a14 14 0 0 0 0 18"/>',
  dot: '<circle cx="12" cy="12" r="3"/>',
  // departments
  sales: '<path d="M3 12V3h9l9 9-9 9z"/><circle cx="7.5" cy="7.5" r="1.5"/>',
  customer_care: '<path d="M4 15v-3a8 8 0 0 1 16 0v3"/><rect x="3" y="14" width="4" height="6" rx="1"/><rect x="17" y="14" width="4" height="6" rx="1"/>',
  outsourced_callcenter: '<circle cx="9" cy="8" r="3"/><path d="M3 20c0-3 3-5 6-5s6 2 6 5"/><circle cx="17" cy="9" r="2.5"/><path d="M16.5 14.5c2.5 0 4.5 2 4.5 5"/>',
  social_media: '<path d="M3 10v4l12 5V5z"/><path d="M18 9a4 4 0 0 1 0 6"/>',
  stores: '<path d="M3 9l2-5h14l2 5"/><path d="M4 9v11h16V9"/><path d="M9 20v-6h6v6"/>',
  technical_service: '<path d="M15 4a5 5 0 0 0 5 7l-9 9a2.1 2.1 0 0 1-3-3l9-9a5 5 0 0 1-2-4z"/>',
  billing: '<path d="M6 2h12v20l-3-2-3 2-3-2-3 2z"/><path d="M9 7h6M9 11h6M9 15h4"/>',
  system: '<circle cx="12" cy="12" r="3"/><path d="M12 2v3M12 19v3M2 12h3M19 12h3M5 5l2 2M17 17l2 2M19 5l-2 2M7 17l-2 2"/>',
  // kinds of fact without a channel
  case: '<path d="M3 6h7l2 2h9v11H3z"/>',
  promise: '<path d="M4 12l5 5L20 6"/>',
  purchase: '<path d="M5 7h14l-1 14H6z"/><path d="M9 7a3 3 0 0 1 6 0"/>',
  warranty: '<path d="M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z"/>',
  consent: '<circle cx="12" cy="12" r="9"/><path d="M8 12l3 3 5-6"/>',
  objection: '<circle cx="12" cy="12" r="9"/><path d="M6 6l12 12"/>',
  address: '<path d="M3 11l9-8 9 8"/><path d="M5 10v10h14V10"/>',
  identity: '<rect x="3" y="5" width="18" height="14" rx="2"/><circle cx="9" cy="12" r="2.5"/><path d="M14 10h4M14 14h4"/>',
  contract: '<path d="M6 2h9l5 5v15H6z"/><path d="M9 17l2-3 2 2 3-4"/>',
  person: '<circle cx="12" cy="8" r="4"/><path d="M4 21c0-4 4-7 8-7s8 3 8 7"/>',
  decision: '<path d="M12 3v18M5 8h14M5 8l-2 6h4zM19 8l-2 6h4z"/>',
  lock: '<rect x="5" y="11" width="14" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>',
  clock: '<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 3"/>',
  late: '<circle cx="12" cy="13" r="8"/><path d="M12 9v4l2 2M9 2h6"/>',
  arrow: '<path d="M4 12h15M13 6l6 6-6 6"/>',
  search: '<circle cx="11" cy="11" r="7"/><path d="M20 20l-4-4"/>',
  alert: '<path d="M12 3l10 18H2z"/><path d="M12 10v5M12 18h.01"/>',
};

export function svg(name, cls = "icon") {
  const span = document.createElement("span");
  span.className = cls;
  span.setAttribute("aria-hidden", "true");
  span.innerHTML = `<svg viewBox="0 0 24 24" width="1em" height="1em" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${P[name] || P.dot}</svg>`;
  return span;
}

export function lockIcon() {
  return svg("lock", "icon icon-inline");
}

/** The icon for an event: its channel when it has one, else its kind of fact. */
export function eventIconName(ev) {
  const ch = ev && ev.channel;
  if (ch && ch !== "any" && P[ch]) return ch;
  const t = (ev && ev.type) || "";
  if (t.startsWith("case.")) return "case";
  if (t.startsWith("promise.")) return "promise";
  if (t.startsWith("purchase.")) return "purchase";
  if (t.startsWith("warranty.")) return "warranty";
  if (t.startsWith("consent.")) return "consent";
  if (t.startsWith("objection.")) return "objection";
  if (t.startsWith("address.")) return "address";
  if (t.startsWith("identity.") || t.startsWith("customer.merged") || t.startsWith("customer.unmerged")) return "identity";
  if (t.startsWith("contract.")) return "contract";
  if (t === "customer.registered") return "person";
  if (t === "contact.decided") return "decision";
  if (t.startsWith("call.")) return "phone";
  if (t.startsWith("social.")) return "social";
  return ch === "any" ? "any" : "dot";
}

export function channelIcon(channel) {
  return svg(P[channel] ? channel : "dot", "icon");
}

const DEPT_KNOWN = new Set(Object.keys(DEPARTMENTS));

/** A coloured badge with the department's icon and name. */
export function deptBadge(dept, agent) {
  const known = DEPT_KNOWN.has(dept);
  const cls = known ? `dept dept-${dept}` : "dept dept-other";
  return h("span", { class: cls, title: agent ? `${deptName(dept)} — agent ${agent}` : deptName(dept) },
    svg(known ? dept : "system", "icon"), " ", deptName(dept), agent ? h("span.agent", ` · ${agent}`) : null);
}

/** Where a fact with no department came from, in words: the system that saw it ("the
 * consent hub", "the ticketing system"), never a bare code after a colon. */
export function sourceBadge(source) {
  const words = source ? String(source).replace(/[-_]+/g, " ") : "";
  const label = !words ? "No department" : /system$/i.test(words) ? `From the ${words}` : `From the ${words} system`;
  return h("span.dept.dept-other", { title: words ? `No department: recorded by the ${words} system` : "No department recorded" },
    svg("system", "icon"), " ", label);
}

// The contact policy's reasons (their codes) in the words the verdict banner and the forms use.
export const REASONS = {
  objection: "The customer objected",
  consent_withdrawn: "Consent withdrawn",
  no_legal_basis: "No consent and no contract",
  excluded_list: "On an exclusion list (Robinson)",
  quiet_hours: "Outside calling hours",
  frequency_cap: "Too many contacts recently",
  cooldown: "Cooling off after “not interested”",
  stale: "History not up to date — ask again in a moment",
};
