"""A fake Bluesky PDS on 127.0.0.1: the XRPC methods the atproto SDK calls to sign in and post, scriptable to fail.

It answers as bsky.social does: sessions are JWTs with an expiry (the SDK refreshes them before it), a post is
checked against the app.bsky.feed.post lexicon (300 graphemes, facets inside the text's UTF-8 bytes), a
record key must be a TID (the AppView ignores posts under any other key), and creating a record under a key
already taken answers 500, as the reference PDS still does (bluesky-social/atproto#3718).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from datetime import timedelta
from typing import Any

import regex

from tests.fakes import provider
from tests.fakes.provider import ProviderFake, Received

POST = "app.bsky.feed.post"
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
BAD_PASSWORD = {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}


class Answer(provider.Answer):
    """The PDS's answers, scripted by XRPC method: `bluesky.script(nsid, Answer.expired_token())`."""

    @classmethod
    def rate_limited(cls, reset: float) -> Answer:
        """The PDS's 429: RateLimit-Reset is epoch seconds."""
        return cls(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {
            "ratelimit-limit": "5000", "ratelimit-remaining": "0", "ratelimit-reset": str(int(reset)),
            "ratelimit-policy": "5000;w=3600",
        })

    @classmethod
    def server_error(cls, status: int = 503) -> Answer:
        return cls(status, {"error": "InternalServerError", "message": "Internal Server Error"})

    @classmethod
    def unauthorized(cls) -> Answer:
        return cls(401, BAD_PASSWORD)

    @classmethod
    def expired_token(cls) -> Answer:
        return cls(400, {"error": "ExpiredToken", "message": "Token has expired"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, Any]) -> str:
    header = {"typ": "at+jwt", "alg": "ES256K"}
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()),
                     _b64(secrets.token_bytes(64))])


def cid_of(value: Any) -> str:
    """A CIDv1 (dag-cbor, sha2-256) string, as a PDS names a record, hashed here over its JSON."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    raw = bytes([0x01, 0x71, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def new_tid() -> str:
    value = (time.time_ns() // 1000) << 10 | secrets.randbelow(1024)
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


class FakeBluesky(ProviderFake):
    """createSession, refreshSession, getProfile, createRecord and getRecord; every call recorded."""

    def __init__(self, handle: str, password: str, *, did: str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
                 access_lifetime: timedelta = timedelta(hours=2)) -> None:
        super().__init__()
        self.handle = handle
        self.password = password
        self.did = did
        self.access_lifetime = access_lifetime
        # rkey -> {"uri", "cid", "value"} of every post in the repository.
        self.records: dict[str, dict[str, Any]] = {}
        self._access: dict[str, float] = {}
        self._refresh: set[str] = set()

    def route(self, request: Received) -> str:
        return request.path.removeprefix("/xrpc/")

    def answer(self, request: Received) -> Answer:
        status, body = self._act(self.route(request), request.headers, request.params)
        return Answer(status, body)

    # -- what the PDS would do ----------------------------------------------------------------------
    def _session(self) -> dict[str, Any]:
        now = int(time.time())
        access = _jwt({"scope": "com.atproto.appPass", "sub": self.did, "aud": "did:web:127.0.0.1", "iat": now,
                       "exp": now + int(self.access_lifetime.total_seconds())})
        refresh = _jwt({"scope": "com.atproto.refresh", "sub": self.did, "aud": "did:web:127.0.0.1", "iat": now,
                        "exp": now + 90 * 86400, "jti": secrets.token_urlsafe(16)})
        self._access[access] = now + self.access_lifetime.total_seconds()
        self._refresh.add(refresh)
        return {
            "did": self.did, "handle": self.handle, "email": "support@example.com", "emailConfirmed": True,
            "accessJwt": access, "refreshJwt": refresh, "active": True,
            # The SDK sends everything after sign-in to the PDS this document names, as bsky.social's entryway does.
            "didDoc": {
                "@context": ["https://www.w3.org/ns/did/v1"], "id": self.did, "alsoKnownAs": [f"at://{self.handle}"],
                "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": self.url}],
            },
        }

    def _bearer(self, headers: dict[str, str]) -> str:
        return headers.get("authorization", "").removeprefix("Bearer ")

    def _authorised(self, headers: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        """None when the access token is good, else the PDS's answer."""
        expires = self._access.get(self._bearer(headers))
        if expires is None:
            return 401, {"error": "AuthenticationRequired", "message": "Invalid token"}
        if expires < time.time():
            return 400, {"error": "ExpiredToken", "message": "Token has expired"}
        return None

    def _profile(self) -> dict[str, Any]:
        return {"did": self.did, "handle": self.handle, "displayName": "Example Support",
                "followersCount": 5400, "followsCount": 12, "postsCount": len(self.records),
                "indexedAt": "2024-02-06T10:00:00.000Z", "createdAt": "2023-05-01T10:00:00.000Z"}

    def _invalid_post(self, record: Any) -> str | None:
        """What the lexicon check says of a post record, or None when it is valid."""
        if not isinstance(record, dict) or record.get("$type", POST) != POST:
            return "Invalid app.bsky.feed.post record: Record/$type must be app.bsky.feed.post"
        text = record.get("text")
        if not isinstance(text, str) or not isinstance(record.get("createdAt"), str):
            return "Invalid app.bsky.feed.post record: Record must have the properties \"text\" and \"createdAt\""
        if len(regex.findall(r"\X", text)) > 300 or len(text.encode()) > 3000:
            return "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"
        size = len(text.encode())
        for i, facet in enumerate(record.get("facets") or []):
            index = facet.get("index", {})
            start, end = index.get("byteStart"), index.get("byteEnd")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= size):
                return f"Invalid app.bsky.feed.post record: Record/facets/{i}/index is outside the text"
        reply = record.get("reply")
        if reply is not None and not all(isinstance(reply.get(k, {}).get(f), str) and reply[k][f]
                                         for k in ("root", "parent") for f in ("uri", "cid")):
            return "Invalid app.bsky.feed.post record: Record/reply must have root and parent strong refs"
        return None

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("repo") not in (self.did, self.handle):
            return 400, {"error": "InvalidRequest", "message": "Invalid repo"}
        if body.get("collection") != POST:
            return 400, {"error": "InvalidRequest", "message": "this fake stores posts only"}
        record = body.get("record")
        problem = self._invalid_post(record)
        if problem is not None:
            return 400, {"error": "InvalidRequest", "message": problem}
        rkey = body.get("rkey") or new_tid()
        if not TID.match(rkey):
            return 400, {"error": "InvalidRequest", "message": f"Invalid record key for {POST}: {rkey}"}
        with self._lock:
            if rkey in self.records:
                return 500, {"error": "InternalServerError", "message": "Internal Server Error"}
            uri = f"at://{self.did}/{POST}/{rkey}"
            cid = cid_of(record)
            self.records[rkey] = {"uri": uri, "cid": cid, "value": record}
        return 200, {"uri": uri, "cid": cid, "commit": {"cid": cid_of([uri, cid]), "rev": new_tid()},
                     "validationStatus": "valid"}

    def _act(self, nsid: str, headers: dict[str, str], params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if nsid == "com.atproto.server.createSession":
            identifier = str(params.get("identifier", "")).lower().removeprefix("@")
            if identifier in (self.handle, self.did) and params.get("password") == self.password:
                with self._lock:
                    return 200, self._session()
            return 401, BAD_PASSWORD
        if nsid == "com.atproto.server.refreshSession":
            with self._lock:
                if self._bearer(headers) not in self._refresh:
                    return 400, {"error": "InvalidToken", "message": "Token could not be verified"}
                self._refresh.discard(self._bearer(headers))
                return 200, self._session()
        refused = self._authorised(headers)
        if refused is not None:
            return refused
        if nsid == "app.bsky.actor.getProfile":
            if params.get("actor") not in (self.handle, self.did):
                return 400, {"error": "InvalidRequest", "message": "Profile not found"}
            return 200, self._profile()
        if nsid == "com.atproto.repo.createRecord":
            return self._create(params)
        if nsid == "com.atproto.repo.getRecord":
            with self._lock:
                found = self.records.get(str(params.get("rkey")))
            if params.get("repo") not in (self.did, self.handle) or found is None:
                return 400, {"error": "RecordNotFound", "message": "Could not locate record"}
            return 200, found
        return 501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"}
