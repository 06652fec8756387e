"""Fetch a Kinetics SlowFast checkpoint from its model zoo, verify it, cache it, and optionally import it.

    thermal-hf download-weights slowfast_r50 [--dir CACHE] [--convert OUTPUT_DIR --num_labels 14]

Downloads are streamed to ``<file>.part`` and resumed with an HTTP ``Range`` request after a cut
connection (automatically, up to ``--retries`` times, and across runs). A server that ignores the range
(answers ``200`` instead of ``206``) is handled by starting again from zero. The finished file is checked
against its SHA-256 before it is moved into the cache: a mismatch removes it and raises
[`ChecksumMismatchError`]. A file already in the cache that passes the check is not downloaded again.

Digests: MMAction2 names its files after the first 8 hex digits of their SHA-256, so at least that prefix
is always verified. For the pytorchvideo zoo files no published digest is known here: the digest of what
was downloaded is printed and stored beside the file (``<file>.sha256``), and later runs check the cached
file against it (trust on first use). Pass ``--sha256`` to pin a full digest you trust.

Only the standard library (``urllib``) is used for HTTP; nothing is fetched at import time.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from thermal_hf.cli_parser import CommandParser
from thermal_hf.errors import CheckpointError

#: Environment variable naming thermal-hf's cache root; weights go to ``$THERMAL_HF_CACHE/weights``.
CACHE_ENV = "THERMAL_HF_CACHE"
_CHUNK = 1 << 20


class WeightsDownloadError(OSError):
    """The download itself failed (network, HTTP status, truncated transfer) after all retries."""


class ChecksumMismatchError(CheckpointError):
    """A downloaded or cached file does not have the SHA-256 it must have; the file has been removed."""


@dataclass(frozen=True)
class PretrainedWeights:
    """One zoo checkpoint: where it lives, what it is, and what its SHA-256 must be.

    Attributes:
        name: registry key used on the command line.
        url: download address.
        filename: file name in the cache.
        format: ``"pytorchvideo"`` or ``"mmaction2"``: how [`import_checkpoint`] reads it.
        model_depth: backbone depth of the checkpoint.
        sha256: full hex digest if known (pinned), else ``None``.
        sha256_prefix: a known prefix of the digest (MMAction2's file names carry 8 hex digits), else ``None``.
        description: one line for ``--list``.
    """

    name: str
    url: str
    filename: str
    format: str
    model_depth: int
    sha256: str | None = None
    sha256_prefix: str | None = None
    description: str = ""


_PTV_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
_MMA_ZOO = "https://download.openmmlab.com/mmaction/v1.0/recognition/slowfast"
_MMA_R50 = "slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb"

#: name -> checkpoint. The pytorchvideo URLs are those of `pytorchvideo.models.hub.slowfast`; the MMAction2
#: URL is the one in MMAction2's SlowFast model zoo table (configs/recognition/slowfast/README.md).
REGISTRY: dict[str, PretrainedWeights] = {
    w.name: w
    for w in (
        PretrainedWeights(
            name="slowfast_r50",
            url=f"{_PTV_ZOO}/SLOWFAST_8x8_R50.pyth",
            filename="SLOWFAST_8x8_R50.pyth",
            format="pytorchvideo",
            model_depth=50,
            description="pytorchvideo zoo SlowFast R50 8x8, Kinetics-400 (top-1 76.4)",
        ),
        PretrainedWeights(
            name="slowfast_r101",
            url=f"{_PTV_ZOO}/SLOWFAST_8x8_R101.pyth",
            filename="SLOWFAST_8x8_R101.pyth",
            format="pytorchvideo",
            model_depth=101,
            description="pytorchvideo zoo SlowFast R101 8x8, Kinetics-400 (top-1 77.9)",
        ),
        PretrainedWeights(
            name="mmaction2_slowfast_r50",
            url=f"{_MMA_ZOO}/{_MMA_R50}/{_MMA_R50}_20220818-1cb6dfc8.pth",
            filename=f"{_MMA_R50}_20220818-1cb6dfc8.pth",
            format="mmaction2",
            model_depth=50,
            sha256_prefix="1cb6dfc8",
            description="MMAction2 SlowFast R50 8x8x1 256e, Kinetics-400 (top-1 76.80)",
        ),
    )
}


def default_cache_dir() -> Path:
    """``$THERMAL_HF_CACHE/weights`` if the variable is set, else ``~/.cache/thermal_hf/weights``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "thermal_hf") / "weights"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_digest(spec: PretrainedWeights, sha256: str | None, sidecar: Path) -> tuple[str | None, str]:
    """(expected full digest or prefix, where it comes from). A user-given digest wins over everything."""
    if sha256:
        return sha256.lower(), "--sha256"
    if spec.sha256:
        return spec.sha256, "pinned digest"
    if sidecar.is_file():
        # Trust on first use: the digest recorded when the file was first downloaded.
        return sidecar.read_text().split()[0].lower(), f"recorded digest {sidecar.name}"
    if spec.sha256_prefix:
        return spec.sha256_prefix, "digest prefix in the file name"
    return None, "no known digest"


def _verify(path: Path, expected: str | None, source: str) -> str:
    """Check `path` against a full digest or a prefix; remove it and raise on mismatch. Returns the digest."""
    actual = sha256_file(path)
    if expected is not None and not actual.startswith(expected):
        path.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"{path}: SHA-256 {actual} does not match the expected {expected} ({source}); the file was removed. "
            "If the server hands out a different file, check the URL (--url) or pin the right digest (--sha256)."
        )
    return actual


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value or "")
    return int(match.group(1)) if match else None


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool, desc: str) -> None:
    """One HTTP request writing into `part`, resuming from its current size when the server allows it.

    Raises `http.client.IncompleteRead` / `OSError` when the transfer is cut; the bytes received so far
    stay in `part` for the next attempt.
    """
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "thermal-hf"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) URL from the registry)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Range beyond the end: the .part we hold is longer than (or as long as) the file. Start over;
            # the checksum decides whether a complete file is right, not the byte count.
            part.unlink()
            raise http.client.IncompleteRead(b"") from err
        raise WeightsDownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
    with response:
        status = response.status
        if status == 206 and _content_range_start(response.headers.get("Content-Range")) != offset:
            # Some other range than the one asked for: drop what we have and ask for the whole file.
            part.unlink(missing_ok=True)
            raise http.client.IncompleteRead(b"")
        if status != 206:
            # The server ignored the Range header (200: the whole file follows): restart from zero.
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        mode = "ab" if offset else "wb"
        with open(part, mode) as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
            disable=None if progress else True,
        ) as bar:
            received = offset
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received < total:
            raise http.client.IncompleteRead(b"", total - received)


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    expected_sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download `url` to `dest` via ``dest.part`` with resume, then verify and move it into place.

    Args:
        url: what to fetch.
        dest: final path; ``<dest>.part`` holds an unfinished download (kept across runs and resumed).
        expected_sha256: full hex digest or a prefix of it; ``None`` skips the check.
        retries: further attempts after a cut connection, each resuming where the last one stopped.
        timeout: socket timeout in seconds.
        progress: show a tqdm progress bar (only on a terminal).

    Raises:
        ChecksumMismatchError: the finished file has another digest (it is removed).
        WeightsDownloadError: an HTTP error, or the transfer was still incomplete after all retries.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout=timeout, progress=progress, desc=dest.name)
            break
        except (http.client.IncompleteRead, ConnectionError, TimeoutError, urllib.error.URLError) as err:
            if isinstance(err, urllib.error.URLError) and not isinstance(err.reason, (ConnectionError, TimeoutError)):
                raise WeightsDownloadError(f"{url}: {err.reason}") from err
            if attempt == retries:
                have = part.stat().st_size if part.exists() else 0
                raise WeightsDownloadError(
                    f"{url}: transfer interrupted {retries + 1} times ({err!r}); {have} bytes kept in {part}, "
                    "run the command again to resume"
                ) from err
    _verify(part, expected_sha256, "expected digest")
    os.replace(part, dest)
    return dest


def download_weights(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Return the path of the verified zoo checkpoint `name`, downloading it into the cache if needed.

    Args:
        name: a key of [`REGISTRY`] (``slowfast_r50``, ``slowfast_r101``, ``mmaction2_slowfast_r50``).
        cache_dir: folder of the cached files (default [`default_cache_dir`]).
        url: another address for the same file (a mirror, or a local server in tests).
        sha256: a full digest (or prefix) to require instead of the registry's.
        retries, timeout, progress: see [`download_file`].
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown weights {name!r}; choose one of {', '.join(REGISTRY)}")
    spec = REGISTRY[name]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dest = folder / spec.filename
    sidecar = dest.with_name(dest.name + ".sha256")
    expected, source = _expected_digest(spec, sha256, sidecar)
    if dest.is_file():
        try:
            _verify(dest, expected, source)
            return dest  # cache hit
        except ChecksumMismatchError as err:
            print(f"warning: cached file failed verification, downloading again: {err}", file=sys.stderr)
    # A stale sidecar of a file we just removed must not judge the new download (unless the user pinned).
    if not sha256 and not spec.sha256:
        sidecar.unlink(missing_ok=True)
        expected, source = _expected_digest(spec, None, sidecar)
    path = download_file(
        url or spec.url, dest, expected_sha256=expected, retries=retries, timeout=timeout, progress=progress
    )
    digest = sha256_file(path)
    sidecar.write_text(f"{digest}  {spec.filename}\n")
    if expected is None or len(expected) < 64:
        print(f"{spec.filename}: sha256 {digest} ({source}; recorded in {sidecar.name})", file=sys.stderr)
    return path


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = CommandParser(
        prog="thermal-hf download-weights",
        description="Fetch a Kinetics SlowFast checkpoint (resumable, cached; SHA-256 verified where a digest is "
        "published, else recorded on first download and checked afterwards) and optionally import it as a thermal-hf "
        "model.",
    )
    parser.add_argument("name", nargs="?", choices=sorted(REGISTRY), help="which checkpoint")
    parser.add_argument("--list", action="store_true", help="list the known checkpoints and exit")
    parser.add_argument("--dir", type=Path, default=None, help=f"cache folder (default {default_cache_dir()})")
    parser.add_argument("--url", default=None, help="download from this address instead (mirror)")
    parser.add_argument("--sha256", default=None, help="require this SHA-256 (full digest or prefix)")
    parser.add_argument("--retries", type=int, default=3, help="resume attempts after a cut connection (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds (default 60)")
    parser.add_argument("--convert", type=Path, default=None, metavar="OUTPUT_DIR",
                        help="also import the checkpoint as a saved model with a fresh head into OUTPUT_DIR")
    parser.add_argument("--num_labels", type=int, default=None, help="classes of the new head (with --convert)")
    parser.add_argument("--labels", nargs="+", default=None, help="class names in id order (with --convert)")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --convert: replace the model OUTPUT_DIR holds (else a folder that is not empty is "
                             "refused)")
    args = parser.parse_args(argv)
    if args.list:
        return args
    if args.name is None:
        parser.error("the name of a checkpoint is required (or --list)")
    if args.convert is not None and args.num_labels is None and args.labels is None:
        parser.error("--convert needs --num_labels (or --labels)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.list:
        for spec in REGISTRY.values():
            digest = spec.sha256 or (f"{spec.sha256_prefix}... (prefix)" if spec.sha256_prefix else "not published")
            print(f"{spec.name:<24} {spec.format:<12} R{spec.model_depth:<4} sha256 {digest}\n    {spec.url}")
        return 0
    try:
        path = download_weights(
            args.name, args.dir, url=args.url, sha256=args.sha256, retries=args.retries, timeout=args.timeout
        )
        print(path)
        if args.convert is not None:
            from thermal_hf.models.thermal_slowfast.convert_checkpoint import import_checkpoint

            spec = REGISTRY[args.name]
            num_labels = args.num_labels if args.num_labels is not None else len(args.labels)
            out = import_checkpoint(
                path, args.convert, format=spec.format, num_labels=num_labels, labels=args.labels,
                model_depth=spec.model_depth, overwrite=args.overwrite,
            )
            print(out)
    except WeightsDownloadError as err:  # the network (an OSError too, so first)
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:  # ChecksumMismatchError / CheckpointError / bad arguments / a disk error
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
