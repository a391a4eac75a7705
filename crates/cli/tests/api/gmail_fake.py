#!/usr/bin/env python3
"""A Gmail API fake for the account tests, started by scripts/gmail-fake.sh on 127.0.0.1.

Every route, HTTP method, parameter and scope comes from Google's discovery document
gmail.v1.json (the copy shipped in PyPI google-api-python-client; scripts/gmail-discovery.sh),
none is written here by hand:
- a request matches a method by HTTP method and `path` template (`{x}` one segment, `{+x}`
  any); the simple-upload path of a method's `mediaUpload` matches too; no match: 404;
- `Authorization: Bearer JWT` (or the `access_token` parameter) is an access token of the OAuth
  peer (scripts/oauth2.sh): RS256, checked against OAUTH_URL/jwks, not expired; else 401;
- the token's `scope` claim must hold one of the method's `scopes`; else Google's 403;
- query parameters must be declared by the method (location=query) or by the document;
  types, enums, repeats and required ones are checked; else 400 INVALID_ARGUMENT;
- the path's `userId` must be `me` or the token's `email`; else 403 (delegation denied).
Implemented: users.messages.send (JSON `raw`, or /upload/... with uploadType=media|multipart),
users.messages.list, users.messages.get, users.messages.attachments.get, users.getProfile;
every other method of the document answers 501. One shared mailbox per fake.

Google's service-account token endpoint: POST /token (form) grant_type=
urn:ietf:params:oauth:grant-type:jwt-bearer & assertion=JWT. The assertion is verified with
google-auth (`google.auth.jwt.decode`) against the public key registered for its `iss`, with
audience http://127.0.0.1:PORT/token; RS256, `sub` and `scope` present, exp - iat <= 3600.
Accepted: the same form goes on to OAUTH_URL/token and its status and body are relayed;
refused: 400 {"error": "invalid_grant", "error_description": why}.

Test controls (JSON):
  POST /__fake/service-accounts {"client_email", "public_key_pem"}  registers a key
  POST /__fake/messages {"raw": MIME text (UTF-8; U+DC80..U+DCFF stand for raw bytes) or
                         "raw_base64url": the bytes, "labelIds"?: ["INBOX"], "threadId"?,
                         "internalDate"?: ms (default: its Date header, else now)}
                                                 seeds a message -> {"id", "threadId"}
  GET  /__fake/sent       the messages sent through messages.send, parsed with `email`
  GET  /__fake/requests   every API request: [{"method","path","query","status","scopes","id"}]
  GET  /__fake/stats      {"sa_tokens", "sa_refused"}
  POST /__fake/reset      empties mailbox, request log and stats (keeps registered keys)

usage: python gmail_fake.py --port PORT --discovery gmail.v1.json --oauth OAUTH_URL
"""

import argparse
import base64
import binascii
import email
import email.policy
import email.utils
import html
import json
import re
import secrets
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import google.auth.crypt
import google.auth.exceptions
import google.auth.jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_BODY = 50 * 1024 * 1024
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    411: "INVALID_ARGUMENT",
    413: "INVALID_ARGUMENT",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
}
AUTH_HELP = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
SHORT_LIVED = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)
INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class ApiError(Exception):
    """A Google-style JSON error: {"error": {"code", "message", "errors": [...], "status"}}."""

    def __init__(self, code, message, reason, item_message=None, headers=None, extra=None, why=None):
        super().__init__(message)
        item = {"message": item_message or message, "domain": "global", "reason": reason}
        item.update(extra or {})
        self.code = code
        self.body = {"error": {"code": code, "message": message, "errors": [item], "status": STATUS_NAMES.get(code, "UNKNOWN")}}
        self.headers = headers or {}
        self.why = why


def invalid(message, reason="invalid"):
    return ApiError(400, message, reason)


def b64url_decode(text):
    """base64url, padding optional; anything else (standard alphabet, spaces) refused."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    bare = text.rstrip("=")
    if len(bare) % 4 == 1:
        raise ValueError("bad length")
    return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).decode("ascii")


def jwt_part(segment):
    return json.loads(b64url_decode(segment))


# ---------------------------------------------------------------- the discovery document


class Method:
    def __init__(self, doc_method, template, upload=None):
        self.id = doc_method["id"]
        self.http_method = doc_method["httpMethod"].upper()
        self.template = template
        self.params = doc_method.get("parameters", {})
        self.scopes = doc_method.get("scopes", [])
        self.request_ref = (doc_method.get("request") or {}).get("$ref")
        self.upload = upload  # None, "simple" or "resumable"
        self.media_accept = (doc_method.get("mediaUpload") or {}).get("accept", [])
        self.regex, self.names, self.literal_len = compile_template(template)


def compile_template(template):
    """`gmail/v1/users/{userId}/x/{+name}:verb` -> anchored regex on the raw (encoded) path."""
    pattern, names, literal_len, pos = "", [], 0, 0
    for m in re.finditer(r"\{(\+?)([^}]+)\}", template):
        literal = template[pos : m.start()]
        pattern += re.escape(literal)
        literal_len += len(literal)
        pattern += "(.+)" if m.group(1) else "([^/]+)"
        names.append(m.group(2))
        pos = m.end()
    pattern += re.escape(template[pos:])
    literal_len += len(template) - pos
    return re.compile(pattern), names, literal_len


class Discovery:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        self.doc = doc
        self.global_params = doc.get("parameters", {})
        self.schemas = doc.get("schemas", {})
        root = urllib.parse.urlparse(doc["rootUrl"]).path  # "/"
        base = root + doc.get("servicePath", "")
        self.methods = []

        def walk(resources):
            for resource in resources.values():
                for m in resource.get("methods", {}).values():
                    self.methods.append(Method(m, base + m["path"]))
                    for kind, proto in ((m.get("mediaUpload") or {}).get("protocols") or {}).items():
                        upath = proto["path"]
                        if not upath.startswith("/"):
                            upath = root + upath
                        self.methods.append(Method(m, upath, upload=kind))
                walk(resource.get("resources", {}))

        walk(doc.get("resources", {}))

    def match(self, http_method, raw_path):
        """The most specific method for the path (most literal characters): (method, params)."""
        best = None
        for m in self.methods:
            if m.http_method != http_method:
                continue
            hit = m.regex.fullmatch(raw_path)
            if not hit:
                continue
            if best is None or (m.literal_len, -len(m.names)) > (best[0].literal_len, -len(best[0].names)):
                best = (m, hit)
        if best is None:
            return None, None
        m, hit = best
        values = {}
        for name, raw in zip(m.names, hit.groups()):
            values[name] = urllib.parse.unquote(raw)
        return m, values

    def check_query(self, method, query):
        """Every parameter declared, single unless repeated, typed, required ones present."""
        declared = {k: v for k, v in method.params.items() if v.get("location") == "query"}
        for name, values in query.items():
            spec = declared.get(name) or self.global_params.get(name)
            if spec is None:
                raise invalid(
                    f"Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. "
                    f"Field '{name}' could not be found in request message."
                )
            if len(values) > 1 and not spec.get("repeated"):
                raise invalid(
                    f"Invalid JSON payload received. Repeated values for field '{name}' not allowed: "
                    f"the parameter is not repeated."
                )
            for value in values:
                check_value(name, spec, value)
        for name, spec in declared.items():
            if spec.get("required") and name not in query:
                raise ApiError(400, f"Required parameter: {name}", "required")

    def schema_fields(self, ref):
        return set((self.schemas.get(ref) or {}).get("properties", {}).keys())


def check_value(name, spec, value):
    kind, fmt = spec.get("type", "string"), spec.get("format")
    bad = ApiError(400, f"Invalid value at '{name}' ({fmt or kind}), \"{value}\"", "invalid")
    if kind == "integer" or (kind == "string" and fmt in ("int64", "uint64")):
        if not re.fullmatch(r"-?[0-9]+", value):
            raise bad
        number = int(value)
        low, high = INT_RANGES.get(fmt, (None, None))
        if "minimum" in spec:
            low = int(spec["minimum"])
        if "maximum" in spec:
            high = int(spec["maximum"])
        if (low is not None and number < low) or (high is not None and number > high):
            raise bad
    elif kind == "number":
        try:
            float(value)
        except ValueError:
            raise bad from None
    elif kind == "boolean":
        if value not in ("true", "false"):
            raise bad
    if "enum" in spec and value not in spec["enum"]:
        raise bad


def flag(query, name):
    return query.get(name, ["false"])[-1] == "true"


# ---------------------------------------------------------------- access tokens (OAuth peer)


class Jwks:
    """The OAuth peer's signing keys, fetched on first use and once more for an unknown kid."""

    def __init__(self, oauth_url):
        self.url = oauth_url.rstrip("/") + "/jwks"
        self.keys = None  # kid -> RSAPublicKey
        self.lock = threading.Lock()

    def _fetch(self):
        with urllib.request.urlopen(self.url, timeout=10) as r:
            data = json.load(r)
        keys = {}
        for i, k in enumerate(data.get("keys", [])):
            if k.get("kty") != "RSA":
                continue
            n = int.from_bytes(b64url_decode(k["n"]), "big")
            e = int.from_bytes(b64url_decode(k["e"]), "big")
            keys[k.get("kid", f"#{i}")] = rsa.RSAPublicNumbers(e, n).public_key()
        self.keys = keys

    def candidates(self, kid):
        with self.lock:
            try:
                if self.keys is None:
                    self._fetch()
                if kid is None:
                    return list(self.keys.values())
                if kid not in self.keys:
                    self._fetch()
                return [self.keys[kid]] if kid in self.keys else []
            except (OSError, ValueError, KeyError) as e:
                raise ApiError(500, f"The fake could not fetch the OAuth peer's keys from {self.url}: {e}", "backendError") from None


def unauthenticated(why, missing=False):
    if missing:
        return ApiError(
            401, "Request is missing required authentication credential. " + AUTH_HELP, "required",
            item_message="Login Required.", extra={"location": "Authorization", "locationType": "header"},
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}, why=why,
        )
    return ApiError(
        401, "Request had invalid authentication credentials. " + AUTH_HELP, "authError",
        item_message="Invalid Credentials", extra={"location": "Authorization", "locationType": "header"},
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'}, why=why,
    )


def verify_access_token(jwks, token):
    parts = token.split(".")
    if len(parts) != 3:
        raise unauthenticated("not a JWT")
    try:
        header, claims = jwt_part(parts[0]), jwt_part(parts[1])
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise unauthenticated("malformed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise unauthenticated("malformed JWT")
    if header.get("alg") != "RS256":
        raise unauthenticated(f"alg {header.get('alg')!r} is not RS256")
    signed = (parts[0] + "." + parts[1]).encode("ascii")
    ok = False
    for key in jwks.candidates(header.get("kid")):
        try:
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            ok = True
            break
        except InvalidSignature:
            continue
    if not ok:
        raise unauthenticated("bad signature or unknown key")
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise unauthenticated("no exp")
    if exp <= now:
        raise unauthenticated("token expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, (int, float)) and nbf > now + 5:
        raise unauthenticated("token not yet valid")
    return claims


# ---------------------------------------------------------------- the mailbox


def unfold(value):
    """A header value as in the message, unfolded (RFC 5322 2.2.3), still RFC 2047-encoded."""
    text = re.sub(r"\r?\n(?=[ \t])", "", value).rstrip("\r\n")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def safe_text(value):
    if value is None:
        return None
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def part_bytes(part):
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken part is shown empty, never crashes the fake
        data = None
    if data is None:
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data


def part_text(part):
    try:
        return safe_text(part.get_content())
    except Exception:  # noqa: BLE001 - unknown charset and the like
        return part_bytes(part).decode("utf-8", "replace")


def is_attachment(part):
    return part.get_content_disposition() == "attachment" or bool(part.get_filename())


def first_part(msg, content_type):
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_type() == content_type and not is_attachment(part):
            return part_text(part)
    return None


def header_str(msg, name):
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001
        return None
    return safe_text(value) if value is not None else None


def header_all(msg, name):
    try:
        return [safe_text(v) for v in (msg.get_all(name) or [])]
    except Exception:  # noqa: BLE001
        return []


class Message:
    def __init__(self, raw, label_ids, thread_id=None, internal_date=None, history_id=0):
        self.raw = raw
        self.msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.id = secrets.token_hex(8)
        self.thread_id = thread_id or self.id
        self.label_ids = list(label_ids)
        self.internal_date = internal_date if internal_date is not None else int(time.time() * 1000)
        self.history_id = history_id

    def text(self):
        return first_part(self.msg, "text/plain")

    def html(self):
        return first_part(self.msg, "text/html")

    def searchable(self):
        body = self.text()
        if body is None and self.html() is not None:
            body = html.unescape(re.sub(r"<[^>]*>", " ", self.html()))
        return ((header_str(self.msg, "subject") or "") + " " + (body or "")).lower()

    def snippet(self):
        body = self.text()
        if body is None and self.html() is not None:
            body = html.unescape(re.sub(r"<[^>]*>", " ", self.html()))
        return " ".join((body or "").split())[:100]

    def payload(self, part, part_id, metadata_only=False, wanted=None):
        headers = [{"name": n, "value": unfold(v)} for n, v in part.raw_items()]
        if metadata_only:
            if wanted:
                headers = [h for h in headers if h["name"].lower() in wanted]
            return {"mimeType": part.get_content_type(), "headers": headers}
        out = {
            "partId": part_id,
            "mimeType": part.get_content_type(),
            "filename": safe_text(part.get_filename()) or "",
            "headers": headers,
        }
        if part.is_multipart():
            out["body"] = {"size": 0}
            children = part.get_payload()
            out["parts"] = [
                self.payload(child, f"{part_id}.{i}" if part_id else str(i)) for i, child in enumerate(children)
            ]
        else:
            data = part_bytes(part)
            if is_attachment(part):
                out["body"] = {"attachmentId": f"att-{self.id}-{part_id or 'root'}", "size": len(data)}
            elif data:
                out["body"] = {"size": len(data), "data": b64url(data)}
            else:
                out["body"] = {"size": 0}
        return out

    def find_part(self, part_id, part=None, prefix=""):
        part = part or self.msg
        if prefix == part_id:
            return part
        if part.is_multipart():
            for i, child in enumerate(part.get_payload()):
                found = self.find_part(part_id, child, f"{prefix}.{i}" if prefix else str(i))
                if found is not None:
                    return found
        return None

    def resource(self, fmt, metadata_headers):
        out = {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": self.label_ids,
            "snippet": self.snippet(),
            "sizeEstimate": len(self.raw),
            "historyId": str(self.history_id),
            "internalDate": str(self.internal_date),
        }
        if fmt == "full":
            out["payload"] = self.payload(self.msg, "")
        elif fmt == "metadata":
            wanted = {h.lower() for h in metadata_headers} if metadata_headers else None
            out["payload"] = self.payload(self.msg, "", metadata_only=True, wanted=wanted)
        elif fmt == "raw":
            out["raw"] = b64url(self.raw)
        return out

    def sent_view(self):
        """What a test checks of a sent message: parsed by Python's `email` package."""
        msg = self.msg
        headers = {}
        for name in msg.keys():
            headers.setdefault(name.lower(), header_all(msg, name))

        def addresses(name):
            return [list(pair) for pair in email.utils.getaddresses(header_all(msg, name))]

        defects = []
        for part in msg.walk():
            defects += [f"{type(d).__name__}: {d}".rstrip(": ") for d in part.defects]
            for name in part.keys():
                try:
                    for value in part.get_all(name) or []:
                        defects += [f"{name}: {type(d).__name__}: {d}".rstrip(": ") for d in getattr(value, "defects", ())]
                except Exception as e:  # noqa: BLE001
                    defects.append(f"{name}: {type(e).__name__}: {e}")
        attachments = [
            {"filename": safe_text(p.get_filename()), "content_type": p.get_content_type(), "size": len(part_bytes(p))}
            for p in msg.walk()
            if not p.is_multipart() and is_attachment(p)
        ]
        try:
            raw_text = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            raw_text = self.raw.decode("latin-1")
        return {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": self.label_ids,
            "raw": raw_text,
            "headers": headers,
            "from": addresses("from"),
            "to": addresses("to"),
            "cc": addresses("cc"),
            "bcc": addresses("bcc"),
            "reply_to": addresses("reply-to"),
            "subject": header_str(msg, "subject"),
            "in_reply_to": header_str(msg, "in-reply-to"),
            "references": header_str(msg, "references"),
            "message_id": header_str(msg, "message-id"),
            "content_type": msg.get_content_type(),
            "text": self.text(),
            "html": self.html(),
            "attachments": attachments,
            "defects": defects,
        }


def parse_q(q):
    """Gmail search, the part the tests use: words, "phrases", op:value, -negation."""
    terms = []
    for m in re.finditer(r'(-?)(?:([A-Za-z][A-Za-z0-9_]*):)?("([^"]*)"?|\S+)', q):
        neg, op, value = m.group(1) == "-", (m.group(2) or "").lower(), m.group(4) if m.group(4) is not None else m.group(3)
        terms.append((neg, op, value))
    return terms


def matches(message, terms):
    for neg, op, value in terms:
        v = value.lower()
        if op == "subject":
            hit = v in (header_str(message.msg, "subject") or "").lower()
        elif op in ("from", "to", "cc", "bcc"):
            hit = any(v in h.lower() for h in header_all(message.msg, op))
        elif op in ("label", "in"):
            hit = value.upper().replace("-", "_") in message.label_ids or value in message.label_ids
        elif op == "is":
            hit = {"unread": "UNREAD", "starred": "STARRED", "important": "IMPORTANT"}.get(v, v.upper()) in message.label_ids
        elif op == "rfc822msgid":
            hit = (header_str(message.msg, "message-id") or "").strip("<> ").lower() == v.strip("<> ")
        elif op:
            hit = f"{op}:{v}" in message.searchable()
        else:
            hit = v in message.searchable()
        if hit == neg:
            return False
    return True


class State:
    def __init__(self):
        self.lock = threading.RLock()
        self.service_accounts = {}  # client_email -> public key / certificate PEM
        self.reset()

    def reset(self):
        with self.lock:
            self.messages = []  # oldest first
            self.sent = []
            self.requests = []
            self.stats = {"sa_tokens": 0, "sa_refused": 0}
            self.history_id = 1000

    def add(self, raw, label_ids, thread_id=None, internal_date=None, sent=False):
        with self.lock:
            self.history_id += 1
            m = Message(raw, label_ids, thread_id, internal_date, self.history_id)
            self.messages.append(m)
            if sent:
                self.sent.append(m)
            return m

    def get(self, message_id):
        with self.lock:
            return next((m for m in self.messages if m.id == message_id), None)


# ---------------------------------------------------------------- the server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one segment per answer part would wait on the peer's delayed ACK (40 ms) with Nagle on
    disable_nagle_algorithm = True
    server_version = "gmail-fake"
    timeout = 120

    # set on the class by main()
    discovery = None
    state = None
    jwks = None
    oauth_url = None
    port = None

    def log_request(self, code="-", size="-"):
        path = re.sub(r"(access_token|oauth_token)=[^&]*", r"\1=REDACTED", getattr(self, "path", "") or "")
        why = getattr(self, "_why", None)
        log(f"{self.command} {path} {code}" + (f" ({why})" if why else ""))

    def log_message(self, fmt, *args):
        log("gmail-fake: " + (fmt % args))

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_OPTIONS(self):
        self.dispatch()

    # -- plumbing

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ApiError(400, "Malformed chunked body", "badRequest") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "Request too large", "uploadTooLarge")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise ApiError(400, "Malformed Content-Length", "badRequest")
        n = int(length)
        if n > MAX_BODY:
            raise ApiError(413, "Request too large", "uploadTooLarge")
        data = self.rfile.read(n)
        if len(data) != n:
            raise ApiError(400, "Body shorter than Content-Length", "badRequest")
        return data

    def send_json(self, status, body, headers=None, pretty=False):
        data = (json.dumps(body, indent=2, ensure_ascii=False) + "\n" if pretty else json.dumps(body, ensure_ascii=False)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def dispatch(self):
        self._why = None
        try:
            split = urllib.parse.urlsplit(self.path)
            raw_path = split.path
            query = urllib.parse.parse_qs(split.query, keep_blank_values=True, max_num_fields=1000)
        except ValueError:
            self.close_connection = True
            return self.send_json(400, ApiError(400, "Malformed request target", "badRequest").body)
        try:
            if raw_path.startswith("/__fake/"):
                return self.control(raw_path)
            if raw_path == "/token":
                return self.token_endpoint()
        except ApiError as e:
            self.close_connection = True
            return self.send_json(e.code, e.body, e.headers)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            self.close_connection = True
            return self.send_json(500, {"error": f"fake failure: {type(e).__name__}: {e}"})
        self.api(raw_path, query)

    # -- the Gmail API

    def api(self, raw_path, query):
        entry = {"method": self.command, "path": raw_path, "query": redact(query), "status": None, "scopes": [], "id": None}
        status, body, headers, pretty = 500, None, {}, query.get("prettyPrint", ["true"])[-1] != "false"
        try:
            status, body = self.api_call(raw_path, query, entry)
        except ApiError as e:
            status, body, headers = e.code, e.body, e.headers
            self._why = e.why
            if status >= 500 or status in (411, 413):
                self.close_connection = True
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            status = 500
            body = ApiError(500, f"Internal error in the fake: {type(e).__name__}: {e}", "backendError").body
            self.close_connection = True
        entry["status"] = status
        with self.state.lock:
            self.state.requests.append(entry)
        self.send_json(status, body, headers, pretty=pretty)

    def api_call(self, raw_path, query, entry):
        method, path_params = self.discovery.match(self.command, raw_path)
        if method is None:
            # The body of a request that matches nothing is not read: the connection closes.
            self.close_connection = True
            raise ApiError(404, "Not Found", "notFound", why="no method of the discovery document has this path")
        entry["id"] = method.id
        body = self.read_body()

        token = None
        auth = self.headers.get("Authorization")
        if auth is not None:
            scheme, _, value = auth.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise unauthenticated("Authorization is not a Bearer token")
            token = value.strip()
        elif "access_token" in query:
            token = query["access_token"][-1]
        if token is None:
            raise unauthenticated("no credentials", missing=True)
        claims = verify_access_token(self.jwks, token)
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else []
        entry["scopes"] = scopes
        if not set(scopes) & set(method.scopes):
            raise ApiError(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions",
                item_message="Insufficient Permission",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="' + " ".join(method.scopes) + '"'},
                why=f"{method.id} needs one of {method.scopes}",
            )
        self.discovery.check_query(method, query)
        user = str(claims.get("email") or claims.get("sub") or "")
        if "userId" in path_params and path_params["userId"] != "me" and path_params["userId"].lower() != user.lower():
            who = path_params["userId"]
            raise ApiError(403, f"Delegation denied for {user}", "forbidden", why=f"userId {who!r} is neither me nor {user!r}")
        if query.get("alt", ["json"])[-1] != "json":
            raise ApiError(501, f"alt={query['alt'][-1]} is not implemented in this fake", "notImplemented")

        handler = {
            "gmail.users.messages.send": self.messages_send,
            "gmail.users.messages.list": self.messages_list,
            "gmail.users.messages.get": self.messages_get,
            "gmail.users.messages.attachments.get": self.attachments_get,
            "gmail.users.getProfile": self.get_profile,
        }.get(method.id)
        if handler is None or (method.upload == "resumable"):
            what = method.id + (" (resumable upload)" if method.upload == "resumable" else "")
            raise ApiError(501, f"Method {what} is not implemented in this fake.", "notImplemented")
        return handler(method=method, params=path_params, query=query, body=body, user=user)

    def json_body(self, method, body):
        if not body.strip():
            return {}
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"Invalid JSON payload received. {e}", "parseError") from None
        if not isinstance(value, dict):
            raise ApiError(400, "Invalid JSON payload received. Expected an object.", "invalid")
        fields = self.discovery.schema_fields(method.request_ref) if method.request_ref else set()
        for key in value:
            if fields and key not in fields:
                raise ApiError(400, f"Invalid JSON payload received. Unknown name \"{key}\": Cannot find field.", "invalid")
        return value

    def upload_message(self, method, query, body):
        """The simple-upload path: uploadType=media (the message) or multipart (JSON + message)."""
        kind = query.get("uploadType", [None])[-1]
        ctype = self.headers.get("Content-Type", "")
        if kind == "media":
            check_media_type(method, ctype)
            return {}, body
        if kind == "multipart":
            parts = split_multipart(ctype, body)
            if len(parts) != 2:
                raise invalid("A multipart upload holds two parts: the JSON metadata and the media.")
            (h1, meta), (h2, media) = parts
            check_media_type(method, h2.get("content-type", ""))
            try:
                metadata = json.loads(meta) if meta.strip() else {}
            except ValueError as e:
                raise ApiError(400, f"Invalid JSON payload received. {e}", "parseError") from None
            if not isinstance(metadata, dict):
                raise invalid("Invalid JSON payload received. Expected an object.")
            return metadata, media
        raise invalid("Upload requests must include an uploadType URL parameter (media or multipart here).", "badRequest")

    def messages_send(self, method, params, query, body, user):
        if method.upload:
            meta, raw = self.upload_message(method, query, body)
        else:
            meta = self.json_body(method, body)
            encoded = meta.get("raw")
            if not isinstance(encoded, str) or not encoded:
                raise ApiError(400, "'raw' RFC822 payload message string or uploading message via /upload/* URL required", "invalidArgument")
            try:
                raw = b64url_decode(encoded)
            except (ValueError, binascii.Error):
                shown = encoded if len(encoded) <= 40 else encoded[:40] + "..."
                raise invalid(f"Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed for \"{shown}\"") from None
        thread_id = meta.get("threadId")
        if thread_id is not None and not isinstance(thread_id, str):
            raise invalid(f"Invalid value at 'message.thread_id' (TYPE_STRING), {json.dumps(thread_id)}")
        if not raw.strip():
            raise ApiError(400, "'raw' RFC822 payload message string or uploading message via /upload/* URL required", "invalidArgument")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        recipients = [a for name in ("to", "cc", "bcc") for _, a in email.utils.getaddresses(header_all(parsed, name)) if a]
        if not recipients:
            raise ApiError(400, "Recipient address required", "invalidArgument")
        m = self.state.add(raw, ["SENT"], thread_id or None, sent=True)
        return 200, {"id": m.id, "threadId": m.thread_id, "labelIds": m.label_ids}

    def messages_list(self, method, params, query, body, user):
        max_results = int(query.get("maxResults", ["100"])[-1])
        if max_results <= 0:
            max_results = 100
        max_results = min(max_results, 500)
        offset = 0
        if "pageToken" in query and query["pageToken"][-1] != "":
            token = query["pageToken"][-1]
            try:
                text = b64url_decode(token).decode("ascii")
                if not text.startswith("offset:"):
                    raise ValueError(text)
                offset = int(text[7:])
            except (ValueError, UnicodeDecodeError, binascii.Error):
                raise ApiError(400, "Invalid pageToken", "invalidArgument") from None
        wanted = query.get("labelIds", [])
        spam_trash = flag(query, "includeSpamTrash")
        terms = parse_q(query.get("q", [""])[-1])
        with self.state.lock:
            ordered = sorted(enumerate(self.state.messages), key=lambda p: (p[1].internal_date, p[0]), reverse=True)
            found = []
            for _, m in ordered:
                if not spam_trash and any(l in m.label_ids and l not in wanted for l in ("SPAM", "TRASH")):
                    continue
                if not all(l in m.label_ids for l in wanted):
                    continue
                if not matches(m, terms):
                    continue
                found.append(m)
        page = found[offset : offset + max_results]
        out = {}
        if page:
            out["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if offset + max_results < len(found):
            out["nextPageToken"] = b64url(f"offset:{offset + max_results}".encode()).rstrip("=")
        out["resultSizeEstimate"] = len(found)
        return 200, out

    def messages_get(self, method, params, query, body, user):
        m = self.state.get(params["id"])
        if m is None:
            raise ApiError(404, "Requested entity was not found.", "notFound")
        fmt = query.get("format", ["full"])[-1]
        return 200, m.resource(fmt, query.get("metadataHeaders", []))

    def attachments_get(self, method, params, query, body, user):
        m = self.state.get(params["messageId"])
        prefix = f"att-{params['messageId']}-"
        if m is None or not params["id"].startswith(prefix):
            raise ApiError(404, "Requested entity was not found.", "notFound")
        part_id = params["id"][len(prefix) :]
        part = m.find_part("" if part_id == "root" else part_id)
        if part is None or part.is_multipart():
            raise ApiError(404, "Requested entity was not found.", "notFound")
        data = part_bytes(part)
        return 200, {"attachmentId": params["id"], "size": len(data), "data": b64url(data)}

    def get_profile(self, method, params, query, body, user):
        with self.state.lock:
            return 200, {
                "emailAddress": user,
                "messagesTotal": len(self.state.messages),
                "threadsTotal": len({m.thread_id for m in self.state.messages}),
                "historyId": str(self.state.history_id),
            }

    # -- Google's token endpoint for service accounts

    def token_endpoint(self):
        if self.command != "POST":
            raise ApiError(404, "Not Found", "notFound")
        body = self.read_body()
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            form = {}

        def refuse(error, why):
            with self.state.lock:
                self.state.stats["sa_refused"] += 1
            self._why = why
            return self.send_json(400, {"error": error, "error_description": why})

        grant = form.get("grant_type", [""])[-1]
        if grant != JWT_BEARER:
            return refuse("unsupported_grant_type", f"Invalid grant_type: {grant}")
        assertion = form.get("assertion", [""])[-1]
        if not assertion:
            return refuse("invalid_request", "Missing required parameter: assertion")
        try:
            header = jwt_part(assertion.split(".")[0])
            unverified = google.auth.jwt.decode(assertion, verify=False)
        except Exception:  # noqa: BLE001 - whatever google-auth or base64 raise on garbage
            return refuse("invalid_grant", "Invalid JWT: the assertion is not a JWT")
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return refuse("invalid_grant", f"Invalid JWT: alg must be RS256, not {header.get('alg') if isinstance(header, dict) else None!r}")
        iss = unverified.get("iss") if isinstance(unverified, dict) else None
        with self.state.lock:
            pem = self.state.service_accounts.get(iss) if isinstance(iss, str) else None
        if pem is None:
            return refuse("invalid_grant", f"Invalid grant: account not found ({iss!r} is not a registered service account)")
        audience = f"http://127.0.0.1:{self.port}/token"
        try:
            claims = google.auth.jwt.decode(assertion, certs=pem, audience=audience)
        except Exception as e:  # noqa: BLE001 - google-auth's ValueError family
            text = str(e)
            if "signature" in text.lower():
                return refuse("invalid_grant", "Invalid JWT Signature.")
            if "audience" in text.lower():
                return refuse("invalid_grant", f"Invalid JWT: {text}")
            if "expired" in text.lower() or "too early" in text.lower():
                return refuse("invalid_grant", f"{SHORT_LIVED} ({text})")
            return refuse("invalid_grant", f"Invalid JWT: {text}")
        sub, scope, iat, exp = claims.get("sub"), claims.get("scope"), claims.get("iat"), claims.get("exp")
        if not isinstance(sub, str) or not sub:
            return refuse("invalid_grant", "Invalid JWT: no `sub` (the mailbox the service account acts for)")
        if not isinstance(scope, str) or not scope.strip():
            return refuse("invalid_grant", "Invalid JWT: no `scope` claim (invalid_scope at Google)")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (iat, exp)) or exp - iat > 3600:
            return refuse("invalid_grant", SHORT_LIVED)
        with self.state.lock:
            self.state.stats["sa_tokens"] += 1
        request = urllib.request.Request(
            self.oauth_url.rstrip("/") + "/token", data=body, method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as r:
                status, answer = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, answer = e.code, e.read()
        except OSError as e:
            return self.send_json(502, {"error": "server_error", "error_description": f"the OAuth peer did not answer: {e}"})
        try:
            relayed = json.loads(answer)
        except ValueError:
            relayed = {"error": "server_error", "error_description": answer.decode("utf-8", "replace")[:500]}
        return self.send_json(status, relayed)

    # -- test controls

    def control(self, raw_path):
        body = self.read_body()
        route = (self.command, raw_path.rstrip("/"))
        state = self.state
        if route == ("POST", "/__fake/service-accounts"):
            data = control_json(body)
            email_, pem = data.get("client_email"), data.get("public_key_pem")
            if not isinstance(email_, str) or not email_ or not isinstance(pem, str):
                return self.send_json(400, {"error": "client_email and public_key_pem (strings) are required"})
            try:
                google.auth.crypt.RSAVerifier.from_string(pem)
            except Exception as e:  # noqa: BLE001
                return self.send_json(400, {"error": f"public_key_pem is not an RSA public key or certificate: {e}"})
            with state.lock:
                state.service_accounts[email_] = pem
            return self.send_json(200, {"client_email": email_})
        if route == ("POST", "/__fake/messages"):
            data = control_json(body)
            raw, labels, thread_id = data.get("raw"), data.get("labelIds", ["INBOX"]), data.get("threadId")
            try:
                if isinstance(data.get("raw_base64url"), str) and raw is None:
                    raw_bytes = b64url_decode(data["raw_base64url"])
                elif isinstance(raw, str) and raw:
                    raw_bytes = raw.encode("utf-8", "surrogateescape")
                else:
                    return self.send_json(400, {"error": "raw (the full MIME text) or raw_base64url is required"})
            except (ValueError, binascii.Error, UnicodeEncodeError) as e:
                return self.send_json(400, {"error": f"the message cannot be turned into bytes: {e}"})
            if not isinstance(labels, list) or not all(isinstance(l, str) for l in labels):
                return self.send_json(400, {"error": "labelIds must be a list of strings"})
            if thread_id is not None and not isinstance(thread_id, str):
                return self.send_json(400, {"error": "threadId must be a string"})
            internal = data.get("internalDate")
            if internal is None:
                try:
                    parsed = email.utils.parsedate_to_datetime(
                        email.message_from_bytes(raw_bytes, policy=email.policy.compat32).get("Date", "")
                    )
                    internal = int(parsed.timestamp() * 1000)
                except (TypeError, ValueError, IndexError):
                    internal = None
            try:
                internal = int(internal) if internal is not None else None
            except (TypeError, ValueError):
                return self.send_json(400, {"error": "internalDate must be milliseconds since the epoch"})
            m = state.add(raw_bytes, labels, thread_id, internal)
            return self.send_json(200, {"id": m.id, "threadId": m.thread_id})
        if route == ("GET", "/__fake/sent"):
            with state.lock:
                sent = list(state.sent)
            return self.send_json(200, [m.sent_view() for m in sent])
        if route == ("GET", "/__fake/requests"):
            with state.lock:
                return self.send_json(200, list(state.requests))
        if route == ("GET", "/__fake/stats"):
            with state.lock:
                return self.send_json(200, dict(state.stats))
        if route == ("POST", "/__fake/reset"):
            state.reset()
            return self.send_json(200, {})
        return self.send_json(404, {"error": f"no control route {self.command} {raw_path}"})


def control_json(body):
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"control body is not JSON: {e}", "parseError") from None
    if not isinstance(data, dict):
        raise ApiError(400, "control body must be a JSON object", "invalid")
    return data


def redact(query):
    return {k: (["REDACTED"] * len(v) if k in ("access_token", "oauth_token") else v) for k, v in query.items()}


def check_media_type(method, content_type):
    mime = content_type.split(";")[0].strip().lower()
    for accepted in method.media_accept:
        a = accepted.lower()
        if mime == a or (a.endswith("/*") and mime.startswith(a[:-1])):
            return
    raise invalid(f"Media type '{mime}' is not supported. Valid media types: [{', '.join(method.media_accept)}]", "badContent")


def split_multipart(content_type, body):
    """multipart/related -> [(headers lower-cased, content)], byte-exact contents."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/") or not m:
        raise invalid("A multipart upload needs Content-Type multipart/related with a boundary.", "badContent")
    delimiter = b"--" + m.group(1).encode("latin-1")
    chunks = body.split(delimiter)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts


def main():
    parser = argparse.ArgumentParser(description="Gmail API fake (see the module docstring)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--discovery", required=True, help="gmail.v1.json")
    parser.add_argument("--oauth", required=True, help="the OAuth peer's URL (its /jwks and /token)")
    args = parser.parse_args()
    Handler.discovery = Discovery(args.discovery)
    Handler.state = State()
    Handler.jwks = Jwks(args.oauth)
    Handler.oauth_url = args.oauth
    Handler.port = args.port
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    log(f"gmail fake listening on 127.0.0.1:{args.port} ({len(Handler.discovery.methods)} routes from {args.discovery})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
