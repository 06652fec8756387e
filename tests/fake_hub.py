"""A tiny in-process stand-in for the Hugging Face Hub HTTP API (standard library only).

It speaks just what ``huggingface_hub`` uses to create a repo, commit files (``uploadMode: "regular"``, so
contents arrive base64-inline and no LFS/Xet step runs) and download them back (repo info, tree, resolve).
Point a *fresh process* at it with ``HF_ENDPOINT=hub.url`` (read when ``huggingface_hub`` is imported).
``refuse={"commit": 403}`` makes an endpoint answer with that status, to test failure handling.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

_API = re.compile(r"^/api/(models|datasets)/(?P<repo>[^/]+/[^/]+)(?:/(?P<op>preupload|commit|revision|tree)(?:/(?P<rest>.*))?)?$")
_RESOLVE = re.compile(r"^/(?:(?P<type>datasets)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class FakeHub:
    def __init__(self, refuse: dict[str, int] | None = None):
        self.repos: dict[str, dict[str, bytes]] = {}  # "models/org/name" -> {path: bytes}
        self.created: list[dict] = []  # create-repo payloads
        self.auth_headers: list[str] = []  # Authorization headers seen (to check a token was *sent*)
        self.refuse = dict(refuse or {})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        return self.repos.get(f"{repo_type}s/{repo_id}", {})

    def sha(self, key: str) -> str:
        digest = hashlib.sha1(json.dumps(sorted(self.repos.get(key, {}))).encode())
        for content in self.repos.get(key, {}).values():
            digest.update(content)
        return digest.hexdigest()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None):
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _refused(self, op: str) -> bool:
                if op in hub.refuse:
                    self._send(hub.refuse[op], {"error": f"fake hub refuses {op}"})
                    return True
                return False

            def do_POST(self):
                hub.auth_headers.append(self.headers.get("Authorization", ""))
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlparse(self.path).path
                if path == "/api/validate-yaml":
                    return self._send(200, {})
                if path == "/api/repos/create":
                    if self._refused("create"):
                        return
                    payload = json.loads(data)
                    kind = payload.get("type") or "model"
                    repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
                    hub.created.append(payload)
                    hub.repos.setdefault(f"{kind}s/{repo_id}", {})
                    prefix = "" if kind == "model" else f"{kind}s/"
                    return self._send(200, {"url": f"{hub.url}/{prefix}{repo_id}"})
                match = _API.match(path)
                if not match or match["op"] not in ("preupload", "commit") or self._refused(match["op"]):
                    return None if match and match["op"] in hub.refuse else self._send(404, {"error": "not found"})
                key = f"{match.group(1)}/{match['repo']}"
                if match["op"] == "preupload":
                    files = json.loads(data)["files"]
                    answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                    return self._send(200, {"files": answer})
                staged = dict(hub.repos.get(key, {}))
                for line in data.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        staged[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "deletedFile":
                        staged.pop(item["value"]["path"], None)
                hub.repos[key] = staged  # a commit lands whole or not at all
                sha = hub.sha(key)
                return self._send(200, {"commitUrl": f"{hub.url}/{match['repo']}/commit/{sha}", "commitOid": sha,
                                        "pullRequestUrl": None})

            def do_GET(self):
                path = unquote(urlparse(self.path).path)
                match = _API.match(path)
                if match and match["op"] in (None, "revision", "tree"):
                    key = f"{match.group(1)}/{match['repo']}"
                    if key not in hub.repos:
                        return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    files = hub.repos[key]
                    if match["op"] == "tree":
                        return self._send(200, [{"type": "file", "path": p, "size": len(c),
                                                 "oid": hashlib.sha1(c).hexdigest()} for p, c in files.items()])
                    return self._send(200, {"id": match["repo"], "sha": hub.sha(key), "private": False,
                                            "siblings": [{"rfilename": p} for p in files]})
                match = _RESOLVE.match(path)
                if not match:
                    return self._send(404, {"error": "not found"})
                key = f"{match['type'] or 'models'}/{match['repo']}"
                content = hub.repos.get(key, {}).get(match["path"])
                if content is None:
                    return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                etag = f'"{hashlib.sha1(content).hexdigest()}"'
                return self._send(200, content, {"ETag": etag, "X-Repo-Commit": hub.sha(key)})

            do_HEAD = do_GET

        return Handler


def hub_env(hub: FakeHub, home, **extra: str) -> dict[str, str]:
    """Environment for a subprocess that talks to ``hub`` (online, its own empty HF cache, no stored token)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               TOKENIZERS_PARALLELISM="false", **extra)
    return env


if __name__ == "__main__":  # manual use: python tests/fake_hub.py, then HF_ENDPOINT=<printed url>
    with FakeHub() as hub:
        print(hub.url, flush=True)
        threading.Event().wait()
