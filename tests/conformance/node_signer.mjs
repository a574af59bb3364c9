// A store-link signer written from the README alone, in another language than the agent:
// node:crypto only, no npm packages. It makes an Ed25519 key pair and signs doc/1 documents.
//
// stdin:  {"docs": [{"kind", "store", "device", "version", "issued", "expires", "body",
//                    "canonical": "python" | "js", "envelope": "doc/1" | "jws",
//                    "tamper": <body put in after signing>}]}
// stdout: {"public_key": "<64 hex digits>", "key_id": "...", "docs": ["<document>", ...]}
//
// The signature covers "the canonical JSON of every other field (keys sorted, no spaces,
// UTF-8)". What the agent computes is Python's json.dumps(sort_keys=True,
// separators=(",", ":"), ensure_ascii=False) of the fields it parsed, so:
//   "python": keys sorted by Unicode code point; a number that is a whole value written as
//             its digits; any other number the way Python's repr() writes a float ("1e-07",
//             "1e-05", "0.0001"); strings as JSON.stringify escapes them (the same escapes
//             as Python for valid Unicode).
//   "js":     what a JavaScript signer writes by default, and RFC 8785 (JCS) too: keys sorted
//             by UTF-16 code unit, numbers as JSON.stringify writes them ("1e-7", "0.00001").
import crypto from "node:crypto";

const codePoints = (s) => Array.from(s, (c) => c.codePointAt(0));

function byCodePoint(a, b) {
  const x = codePoints(a);
  const y = codePoints(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

function pythonFloat(x) {
  if (Number.isInteger(x)) return BigInt(x).toString(); // Python reads it back as an int
  const [mantissa, expText] = Math.abs(x).toExponential().split("e"); // shortest digits
  const digits = mantissa.replace(".", "");
  const exp = Number(expText);
  const sign = x < 0 ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
    const whole = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
    return `${sign}${whole}.${digits.slice(exp + 1) || "0"}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : `${Math.abs(exp)}`;
  return `${sign}${m}e${exp < 0 ? "-" : "+"}${e}`;
}

function encode(value, style) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error("NaN and infinities are not JSON");
    return style === "python" ? pythonFloat(value) : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => encode(v, style)).join(",")}]`;
  const keys = Object.keys(value);
  keys.sort(style === "python" ? byCodePoint : undefined);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${encode(value[k], style)}`).join(",")}}`;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const { publicKey, privateKey } = crypto.generateKeyPairSync("ed25519");
const raw = Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url");
const keyId = crypto.createHash("sha256").update(raw).digest("hex").slice(0, 8);

// The JWS envelope (RFC 7515 compact, "alg": "EdDSA" per RFC 8037): the payload is the
// document as JSON.stringify writes it, signed as sent; nothing to reproduce of Python.
function jws(spec) {
  const b64url = (text) => Buffer.from(text, "utf8").toString("base64url");
  const fields = {
    o2o: "doc/2", kind: spec.kind, store: spec.store, device: spec.device,
    version: spec.version, issued: spec.issued, expires: spec.expires, body: spec.body,
  };
  const input = `${b64url(JSON.stringify({ alg: "EdDSA", kid: keyId }))}.` +
    b64url(JSON.stringify(fields));
  const signature = crypto.sign(null, Buffer.from(input, "ascii"), privateKey);
  if ("tamper" in spec) {
    const [header] = input.split(".");
    return `${header}.${b64url(JSON.stringify({ ...fields, body: spec.tamper }))}.` +
      signature.toString("base64url");
  }
  return `${input}.${signature.toString("base64url")}`;
}

const docs = request.docs.map((spec) => {
  if (spec.envelope === "jws") return jws(spec);
  const style = spec.canonical ?? "python";
  const doc = {
    o2o: "doc/1", kind: spec.kind, store: spec.store, device: spec.device,
    version: spec.version, issued: spec.issued, expires: spec.expires, body: spec.body,
    key_id: keyId,
  };
  const signed = Buffer.from(encode(doc, style), "utf8");
  doc.sig = crypto.sign(null, signed, privateKey).toString("base64");
  if ("tamper" in spec) doc.body = spec.tamper;
  return encode(doc, style);
});

process.stdout.write(JSON.stringify({ public_key: raw.toString("hex"), key_id: keyId, docs }));
