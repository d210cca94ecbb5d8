"""A small local stand-in for the Hugging Face Hub, on 127.0.0.1, for tests of the downloader
with the real huggingface_hub client (point it here with HF_ENDPOINT).

It answers as the Hub does for a dataset repo's files:
- HEAD/GET /datasets/<owner>/<name>/resolve/<revision>/<path>:
  a small file: 200 with its git blob sha1 as ETag, Content-Length and X-Repo-Commit;
  a large (LFS) file (.bin, .model, .jsonl): 302 to a CDN on another origin, with X-Linked-Etag
  (the file's sha256), X-Linked-Size and X-Repo-Commit;
  an unknown repo: 404 with X-Error-Code RepoNotFound; an unknown file: 404 EntryNotFound.
- GET <cdn>/blob/<sha256>: the bytes, with Range requests answered 206.
Faults, set per file path: `corrupt` (one bit flipped in what is served, the advertised hash
unchanged), `die_after` (serve that many bytes, then close the connection and stop both
servers for good), `drop_after` (close the connection after that many bytes, once), `pace` (seconds a KB), `busy` (answer that many
requests for the file, HEAD or GET, with `busy_status` and `busy_headers`: 429 Too Many Requests, as the Hub's rate limit
does, with a Retry-After or the IETF draft's RateLimit header that the Hub sends, `"resolvers";r=0;t=<seconds to its reset>`;
or 500, 502, 503 or 504, a server's or a proxy's passing failure; or a mirror's plain 404).
Every request is recorded in `requests` as (method, path, Range header).
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LFS_SUFFIXES = (".bin", ".model", ".jsonl")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class LocalHub:
    def __init__(self, root: Path, repo_id: str):
        self.root, self.repo_id = Path(root), repo_id
        self.corrupt: set[str] = set()
        self.die_after: dict[str, int] = {}
        self.drop_after: dict[str, int] = {}
        self.stall_after: dict[str, int] = {}  # send that many bytes, then nothing until the server stops (a stuck transfer)
        self.endless: set[str] = set()  # a GET sends the file, then zeros without end (a broken mirror); HEAD says the true size
        self.oversent: dict[str, int] = {}  # what an endless GET sent past the file before the client hung up
        self.pace: dict[str, float] = {}  # seconds to send each 1 KB of that file (a slow link: transfers that overlap)
        self.busy: dict[str, int] = {}  # that many requests for the file are answered busy_status, with these headers
        self.busy_headers = {"Retry-After": "1"}
        self.busy_status = 429  # or a server's or a proxy's failure (502), or a mirror's plain 404 (no X-Error-Code)
        self.etags: dict[str, str] = {}  # a file's ETag (a large file's X-Linked-Etag) as a mirror or proxy that rewrites them sends it
        self.refused_tokens: set[str] = set()  # a request bearing one is answered 401, as the Hub answers a wrong or expired token
        self.stopped = threading.Event()
        self.requests: list[tuple[str, str, str | None]] = []
        self.tokens: list[tuple[str, str, str]] = []  # (origin, method, path) of each request that carried an Authorization header
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.answer(self, head=True)

            def do_GET(self):
                hub.answer(self, head=False)

        self.hub_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.cdn_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.hub_server.server_port}"
        self.cdn = f"http://127.0.0.1:{self.cdn_server.server_port}"
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.hub_server, self.cdn_server)]
        for t in self.threads:
            t.start()
        self.alive = True

    def stop(self) -> None:
        if self.alive:
            self.alive = False
            self.stopped.set()
            for s in (self.hub_server, self.cdn_server):
                threading.Thread(target=s.shutdown, daemon=True).start()
                s.server_close()

    def gets(self, suffix: str = "") -> list[str]:
        """Paths of the GET requests made so far (optionally only those ending in suffix)."""
        return [p for m, p, _ in self.requests if m == "GET" and p.endswith(suffix)]

    def by_sha(self, sha: str) -> str | None:
        for f in self.root.rglob("*"):
            if f.is_file() and hashlib.sha256(f.read_bytes()).hexdigest() == sha:
                return f.relative_to(self.root).as_posix()
        return None

    def answer(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        self.requests.append(("HEAD" if head else "GET", h.path, h.headers.get("Range")))
        if h.headers.get("Authorization"):
            self.tokens.append((f"http://127.0.0.1:{h.server.server_port}", h.command, h.path))
        if h.headers.get("Authorization", "").removeprefix("Bearer ") in self.refused_tokens:
            return self.error(h, 401, "", {"X-Error-Message": "Invalid credentials in Authorization header"})
        prefix = f"/datasets/{self.repo_id}/resolve/"
        if h.path.startswith("/blob/"):
            rel = self.by_sha(h.path[len("/blob/"):])
            return self.error(h, 404, "EntryNotFound") if not rel else self.too_many(h, rel) or self.send_bytes(h, rel, head)
        if not h.path.startswith("/datasets/"):
            return self.error(h, 404, "RepoNotFound")
        if not h.path.startswith(prefix):
            return self.error(h, 401, "RepoNotFound")  # the Hub's answer for a repo it will not name
        rel = h.path[len(prefix):].split("/", 1)[1] if "/" in h.path[len(prefix):] else ""
        f = self.root / rel
        if not rel or not f.is_file():
            return self.error(h, 404, "EntryNotFound")
        if self.too_many(h, rel):
            return
        data = f.read_bytes()
        if rel.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            h.send_response(302)
            for k, v in (("Location", f"{self.cdn}/blob/{sha}"), ("X-Linked-Etag", self.etags.get(rel, f'"{sha}"')), ("X-Linked-Size", str(len(data))),
                         ("ETag", f'"{hashlib.sha1(b"pointer " + sha.encode()).hexdigest()}"'), ("X-Repo-Commit", COMMIT),
                         ("Content-Length", "0")):
                h.send_header(k, v)
            h.end_headers()
            return
        self.send_bytes(h, rel, head)

    def send_bytes(self, h: BaseHTTPRequestHandler, rel: str, head: bool) -> None:
        data = (self.root / rel).read_bytes()
        etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if rel in self.corrupt and len(data) > 2000:
            data = data[:2000] + bytes([data[2000] ^ 0x10]) + data[2001:]
        start, status = 0, 200
        rng = h.headers.get("Range")
        if rng and not head:
            start, status = int(rng.split("=")[1].split("-")[0]), 206
        body = data[start:]
        h.send_response(status)
        h.send_header("Content-Length", str(1 << 40 if rel in self.endless and not head else len(body)))
        h.send_header("ETag", self.etags.get(rel, f'"{etag}"'))
        h.send_header("X-Repo-Commit", COMMIT)
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return
        if rel in self.endless:
            self.oversent[rel] = 0
            try:
                h.wfile.write(body)
                while self.oversent[rel] < 4 << 30 and not self.stopped.is_set():  # 4 GB at the most, should nothing stop it
                    h.wfile.write(bytes(1 << 20))
                    self.oversent[rel] += 1 << 20
            except OSError:  # the client hung up
                pass
            h.close_connection = True
            return
        if self.stall_after.get(rel, len(body)) < len(body):
            h.wfile.write(body[:self.stall_after[rel]])
            h.wfile.flush()
            self.stopped.wait(120)
            h.close_connection = True
            return
        if rel in self.pace:
            try:
                for at in range(0, len(body), 1024):
                    h.wfile.write(body[at:at + 1024])
                    h.wfile.flush()
                    self.stopped.wait(self.pace[rel])
            except OSError:  # the client hung up
                h.close_connection = True
            return
        cut = self.die_after.get(rel, self.drop_after.pop(rel, None))
        if cut is not None and cut < len(body):
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            if rel in self.die_after:
                self.stop()
            return
        h.wfile.write(body)

    def too_many(self, h: BaseHTTPRequestHandler, rel: str) -> bool:
        if self.busy.get(rel, 0) <= 0:
            return False
        self.busy[rel] -= 1
        self.error(h, self.busy_status, "RateLimited" if self.busy_status == 429 else "", self.busy_headers)
        return True

    def error(self, h: BaseHTTPRequestHandler, status: int, code: str, headers: dict | None = None) -> None:
        body = b'{"error": "' + code.encode() + b'"}'
        h.send_response(status)
        h.send_header("X-Error-Code", code) if code else None
        h.send_header("X-Repo-Commit", COMMIT) if code == "EntryNotFound" else None
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":  # a HEAD answer has no body: one sent anyway was read as the start of the next answer on the connection
            h.wfile.write(body)
