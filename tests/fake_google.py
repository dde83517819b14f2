"""Fakes of Google's side of Vertex AI, on loopback: a service-account key file made with a
throwaway RSA key, an OAuth token endpoint that checks the signed JWT assertion the way Google's
does (signature, iss, scope, aud, lifetime) before it issues ``ya29.test-…`` tokens, and a Gemini
Live WebSocket server speaking Vertex's wire (``candidatesTokenCount``)."""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: The audience Google's token endpoint requires of an assertion, wherever it is posted
#: (google-auth always signs this one, whatever the key file's token_uri says).
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
LIVE_PATH = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@attrs.define
class ServiceAccount:
    path: Path
    client_email: str
    private_key_pem: str
    key_id: str
    public_key: rsa.RSAPublicKey


def write_service_account(path: Path, token_uri: str, *,
                          client_email: str = "rtproxy-test@test-project.iam.gserviceaccount.com") -> ServiceAccount:
    """A service-account key file, as the Cloud console downloads one, with a fresh 2048-bit key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    key_id = secrets.token_hex(20)
    info: dict[str, Any] = {
        "type": "service_account", "project_id": "test-project", "private_key_id": key_id,
        "private_key": pem, "client_email": client_email, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    path.write_text(json.dumps(info, indent=2))
    return ServiceAccount(path, client_email, pem, key_id, key.public_key())


@attrs.define
class FakeTokenEndpoint:
    """Google's ``/token`` for the JWT-bearer grant. ``fail``: answer that status (with an OAuth
    error) instead; ``hang``: hold requests until released (at teardown at the latest)."""

    port: int = 0
    #: The service accounts whose assertions it accepts: client_email -> public key.
    accounts: dict[str, tuple[str, rsa.RSAPublicKey]] = attrs.Factory(dict)
    expires_in: int = 3600
    fail: int | None = None
    hang: bool = False
    release: threading.Event = attrs.Factory(threading.Event)
    #: Every request's verified claims, and every token issued, in order.
    claims: list[dict[str, Any]] = attrs.Factory(list)
    issued: list[str] = attrs.Factory(list)
    #: Why an assertion was refused (a failed check is a test failure: these should stay empty).
    rejected: list[str] = attrs.Factory(list)
    lock: threading.Lock = attrs.Factory(threading.Lock)
    #: Its wall clock (a test with a fake clock gives it the same one as google-auth's).
    now: Callable[[], float] = time.time

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def requests(self) -> int:
        with self.lock:
            return len(self.claims) + len(self.rejected)

    def accept(self, account: ServiceAccount) -> None:
        self.accounts[account.client_email] = (account.key_id, account.public_key)

    def check(self, body: bytes) -> dict[str, Any]:
        """The assertion's claims, verified as Google verifies them. Raises ValueError."""
        form = urllib.parse.parse_qs(body.decode(), strict_parsing=True)
        if form.get("grant_type") != [JWT_BEARER]:
            raise ValueError(f"grant_type {form.get('grant_type')}")
        (assertion,) = form["assertion"]
        head_b64, claims_b64, sig_b64 = assertion.split(".")
        header = json.loads(_b64url_decode(head_b64))
        claims: dict[str, Any] = json.loads(_b64url_decode(claims_b64))
        if header.get("alg") != "RS256":
            raise ValueError(f"alg {header.get('alg')}")
        if claims.get("iss") not in self.accounts:
            raise ValueError(f"unknown iss {claims.get('iss')}")
        key_id, public_key = self.accounts[claims["iss"]]
        if header.get("kid") != key_id:
            raise ValueError("kid is not the key's id")
        try:
            public_key.verify(_b64url_decode(sig_b64), f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(),
                              hashes.SHA256())
        except InvalidSignature:
            raise ValueError("bad signature") from None
        if claims.get("scope") != CLOUD_PLATFORM:
            raise ValueError(f"scope {claims.get('scope')}")
        if claims.get("aud") != TOKEN_AUDIENCE:
            raise ValueError(f"aud {claims.get('aud')}")
        now = self.now()
        if not (claims["iat"] <= now + 60 and claims["exp"] > now and claims["exp"] - claims["iat"] <= 3600):
            raise ValueError(f"lifetime iat={claims['iat']} exp={claims['exp']}")
        return claims

    def answer(self, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.hang:
            self.release.wait(30)
        try:
            claims = self.check(body)
        except (ValueError, KeyError) as exc:
            with self.lock:
                self.rejected.append(str(exc))
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}
        with self.lock:
            self.claims.append(claims)
            if self.fail is not None:
                return self.fail, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            token = f"ya29.test-{len(self.issued) + 1}-{secrets.token_urlsafe(24)}"
            self.issued.append(token)
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}


@contextmanager
def fake_token_endpoint() -> Iterator[FakeTokenEndpoint]:
    """A FakeTokenEndpoint on 127.0.0.1, served from a thread (google-auth's client blocks)."""
    fake = FakeTokenEndpoint()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/token":
                status, answer = 404, {"error": "not_found"}
            else:
                status, answer = fake.answer(body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-google-token", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@attrs.define
class FakeVertexLive:
    """Vertex AI's Gemini Live endpoint: checks the bearer token and the setup's model, answers
    ``setupComplete``, and every user turn with one text part and Vertex-style usage."""

    #: The token it accepts (set by the test once the gateway has one), and the setup model it expects.
    token: str = ""
    setup_model: str = ""
    reply: str = "hi"
    port: int = 0
    #: Per connection: (path, its headers, its setup frame).
    connections: list[tuple[str, dict[str, str], dict[str, Any]]] = attrs.Factory(list)
    problems: list[str] = attrs.Factory(list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        if request.path != LIVE_PATH:
            self.problems.append(f"path {request.path}")
            await request.reject(404)
            return
        if headers.get("authorization") != f"Bearer {self.token}":
            self.problems.append("authorization is not the current token")
            await request.reject(401, body=b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}')
            return
        ws = await request.accept()
        try:
            setup = json.loads(await ws.get_message())
            self.connections.append((request.path, headers, setup))
            if setup.get("setup", {}).get("model") != self.setup_model:
                self.problems.append(f"setup model {setup.get('setup', {}).get('model')}")
                await ws.aclose(1008, "model not found")
                return
            await ws.send_message(json.dumps({"setupComplete": {"sessionId": "vertex-session-1"}}))
            while True:
                frame = json.loads(await ws.get_message())
                content = frame.get("clientContent") or frame.get("client_content")
                if content is not None and content.get("turnComplete"):
                    await ws.send_message(json.dumps(
                        {"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": self.reply}]}}}))
                    await ws.send_message(json.dumps(
                        {"serverContent": {"turnComplete": True},
                         "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5,
                                           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}],
                                           "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 2}]}}))
        except ConnectionClosed:
            pass


async def serve_fake_vertex_live(*, task_status: trio.TaskStatus[FakeVertexLive] = trio.TASK_STATUS_IGNORED) -> None:
    fake = FakeVertexLive()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(lambda task_status: serve_websocket(
            fake.handle, "127.0.0.1", 0, None, message_queue_size=64, task_status=task_status))
        fake.port = server.port
        task_status.started(fake)
