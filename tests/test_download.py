"""download-weights against a local HTTP server: resume, range refusal, checksum, cache, CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from thermal_hf.models.thermal_slowfast import download as dl

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # a little over 3 MiB, not a multiple of the 1 MiB chunk
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class _State:
    """What the server does and what it saw."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.cut_after: list[int] = []  # per request (consumed in order): close after this many body bytes
        self.ignore_range = False
        self.requests: list[dict] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        state = self.state
        data = state.payload
        if self.path.endswith(".missing"):
            self.send_error(404)
            return
        range_header = self.headers.get("Range")
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        with state.lock:
            cut = state.cut_after.pop(0) if state.cut_after else None
        if match and not state.ignore_range:
            start = int(match[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                state.requests.append({"range": range_header, "status": 416, "sent": 0})
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "none" if state.ignore_range else "bytes")
        self.end_headers()
        sent = body if cut is None else body[:cut]
        # Recorded before the body goes out: recorded after, the client can finish reading first and a test
        # that counts the requests races the server's thread (seen once with the cores busy).
        state.requests.append({"range": range_header, "status": 206 if start else 200, "sent": len(sent)})
        self.wfile.write(sent)
        if cut is not None:
            # Simulate a dropped connection: close the socket mid-body.
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def server():
    state = _State(PAYLOAD)
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/SLOWFAST_8x8_R50.pyth"
    yield state
    httpd.shutdown()
    httpd.server_close()


def _bytes_sent(state: _State) -> int:
    return sum(r["sent"] for r in state.requests)


def test_download_verifies_and_caches(server, tmp_path):
    path = dl.download_weights("slowfast_r50", tmp_path, url=server.url, sha256=DIGEST, progress=False)
    assert path == tmp_path / "SLOWFAST_8x8_R50.pyth"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "SLOWFAST_8x8_R50.pyth.part").exists()
    assert len(server.requests) == 1
    # Cache hit: verified again, nothing downloaded.
    again = dl.download_weights("slowfast_r50", tmp_path, url=server.url, sha256=DIGEST, progress=False)
    assert again == path and len(server.requests) == 1


def test_trust_on_first_use_digest_is_recorded_and_checked(server, tmp_path):
    path = dl.download_weights("slowfast_r50", tmp_path, url=server.url, progress=False)
    sidecar = tmp_path / "SLOWFAST_8x8_R50.pyth.sha256"
    assert sidecar.read_text().split()[0] == DIGEST
    # The cached file is altered on disk: the recorded digest catches it and the file is fetched again.
    path.write_bytes(b"corrupted")
    path = dl.download_weights("slowfast_r50", tmp_path, url=server.url, progress=False)
    assert path.read_bytes() == PAYLOAD and len(server.requests) == 2


def test_resume_after_cut_connection_within_one_call(server, tmp_path):
    server.cut_after = [1 << 20]  # the first response dies after 1 MiB
    path = dl.download_file(server.url, tmp_path / "w.pyth", expected_sha256=DIGEST, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None, f"bytes={1 << 20}-"]
    assert _bytes_sent(server) == len(PAYLOAD)  # nothing fetched twice


def test_resume_across_runs_keeps_the_part_file(server, tmp_path):
    server.cut_after = [1 << 20]
    dest = tmp_path / "w.pyth"
    with pytest.raises(dl.WeightsDownloadError, match="run the command again to resume"):
        dl.download_file(server.url, dest, expected_sha256=DIGEST, retries=0, progress=False)
    part = tmp_path / "w.pyth.part"
    assert part.stat().st_size == 1 << 20 and not dest.exists()
    dl.download_file(server.url, dest, expected_sha256=DIGEST, retries=0, progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests[-1]["range"] == f"bytes={1 << 20}-"
    assert _bytes_sent(server) == len(PAYLOAD)


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.ignore_range = True
    dest = tmp_path / "w.pyth"
    # A stale partial file whose bytes are wrong: appending the 200 body to it would corrupt the result.
    (tmp_path / "w.pyth.part").write_bytes(b"x" * 1000)
    dl.download_file(server.url, dest, expected_sha256=DIGEST, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[0]["range"] == "bytes=1000-" and server.requests[0]["status"] == 200


def test_cut_connection_with_server_ignoring_range(server, tmp_path):
    server.ignore_range = True
    server.cut_after = [1 << 20, 2 << 20]
    path = dl.download_file(server.url, tmp_path / "w.pyth", expected_sha256=DIGEST, progress=False)
    assert path.read_bytes() == PAYLOAD and len(server.requests) == 3


def test_part_file_longer_than_the_file_is_restarted(server, tmp_path):
    (tmp_path / "w.pyth.part").write_bytes(PAYLOAD + b"extra")
    path = dl.download_file(server.url, tmp_path / "w.pyth", expected_sha256=DIGEST, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [r["status"] for r in server.requests] == [416, 200]


def test_checksum_mismatch_is_refused_and_file_removed(server, tmp_path):
    # The served file is not MMAction2's: its digest cannot start with the 8 hex digits in the file name.
    spec = dl.REGISTRY["mmaction2_slowfast_r50"]
    assert spec.sha256_prefix == "1cb6dfc8" and spec.filename.endswith("-1cb6dfc8.pth")
    with pytest.raises(dl.ChecksumMismatchError, match="1cb6dfc8"):
        dl.download_weights("mmaction2_slowfast_r50", tmp_path, url=server.url, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cached_file_with_wrong_digest_is_replaced(server, tmp_path):
    (tmp_path / "SLOWFAST_8x8_R50.pyth").write_bytes(b"not the right file")
    path = dl.download_weights("slowfast_r50", tmp_path, url=server.url, sha256=DIGEST, progress=False)
    assert path.read_bytes() == PAYLOAD and len(server.requests) == 1


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(dl.WeightsDownloadError, match="HTTP 404"):
        dl.download_file(server.url + ".missing", tmp_path / "w", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_reported(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(dl.WeightsDownloadError):
        dl.download_file(f"http://127.0.0.1:{port}/x", tmp_path / "w", retries=1, timeout=5, progress=False)


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("THERMAL_HF_CACHE", str(tmp_path / "cache"))
    assert dl.default_cache_dir() == tmp_path / "cache" / "weights"
    monkeypatch.delenv("THERMAL_HF_CACHE")
    assert dl.default_cache_dir() == Path.home() / ".cache" / "thermal_hf" / "weights"


def test_registry_entries():
    assert set(dl.REGISTRY) == {"slowfast_r50", "slowfast_r101", "mmaction2_slowfast_r50"}
    for spec in dl.REGISTRY.values():
        assert spec.url.startswith("https://") and spec.url.endswith(spec.filename)
        assert spec.format in ("pytorchvideo", "mmaction2")
        if spec.sha256_prefix:
            assert spec.sha256_prefix in spec.filename


def test_cli_download_and_errors(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THERMAL_HF_CACHE", str(tmp_path / "cache"))
    assert dl.main(["slowfast_r50", "--url", server.url, "--sha256", DIGEST]) == 0
    assert (tmp_path / "cache" / "weights" / "SLOWFAST_8x8_R50.pyth").read_bytes() == PAYLOAD
    assert dl.main(["slowfast_r101", "--url", server.url, "--sha256", "0" * 64]) == 2
    assert "does not match" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "weights" / "SLOWFAST_8x8_R101.pyth").exists()
    assert dl.main(["--list"]) == 0
    assert "1cb6dfc8" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        dl.main(["slowfast_r50", "--convert", str(tmp_path / "out")])  # --num_labels missing


def test_cli_convert_after_download(tmp_path, monkeypatch):
    """--convert hands the verified file to import_checkpoint (a tiny depth-18 zoo-format file here)."""
    import torch
    from test_convert_checkpoint import make_pytorchvideo_net

    net = make_pytorchvideo_net(depth=18, num_classes=400)
    ckpt = tmp_path / "tiny.pyth"
    torch.save({"model_state": net.state_dict()}, ckpt)
    state = _State(ckpt.read_bytes())
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        tiny = dataclasses.replace(dl.REGISTRY["slowfast_r50"], model_depth=18)
        monkeypatch.setitem(dl.REGISTRY, "slowfast_r50", tiny)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/tiny.pyth"
        out = tmp_path / "model"
        rc = dl.main(["slowfast_r50", "--dir", str(tmp_path / "cache"), "--url", url, "--convert", str(out),
                      "--num_labels", "3", "--labels", "a", "b", "c"])
        assert rc == 0
        assert (out / "model.safetensors").is_file() and (out / "video_preprocessor_config.json").is_file()
        # run again: the folder holds that model now, replaced only when asked (the file comes from the cache)
        argv = ["slowfast_r50", "--dir", str(tmp_path / "cache"), "--url", url, "--convert", str(out),
                "--num_labels", "2"]
        assert dl.main(argv) == 2
        assert dl.main([*argv, "--overwrite"]) == 0
        from thermal_hf import ThermalSlowFastConfig

        assert ThermalSlowFastConfig.from_pretrained(out).num_labels == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
