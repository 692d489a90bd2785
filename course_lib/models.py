"""Foundation models by name: where they live, whether they are here, how to load them.

Model files of MACE are Python pickles: loading one can run arbitrary code.
Every MACE file is therefore checked against a sha256 *before* ``torch.load``:
the registry's pinned hash, else one an instructor pinned in ``course.toml``
(``[models.sha256]``), else the hash recorded when the file was first
downloaded or first used here (trust on first use, shown to the user).

Download locations follow mace-torch, so a MACE-MP-0 file that ``mace_mp()``
already cached (``$XDG_CACHE_HOME/mace`` or ``~/.cache/mace``) is used as is.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

from course_lib.config import load_config
from course_lib.data import atomic_write_text, sha256_of
from course_lib.paths import MODELS_DIR

logger = logging.getLogger(__name__)

AUTO = "auto"
MACE_MP_RELEASE = "https://github.com/ACEsuit/mace-mp/releases/download/mace_mp_0"


class ModelUnavailableError(RuntimeError):
    """The model's file is not on this machine and could not be fetched."""


class ModelIntegrityError(RuntimeError):
    """A model file's sha256 differs from the expected one; it was not loaded."""


class NotAModelFileError(ValueError):
    """A file given as a MACE model is not one (empty, truncated, another format, not MACE)."""


# ``torch.save`` writes a zip archive; files from before torch 1.6 start with this pickled magic.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the registry."""

    name: str
    kind: str  # "mace" or "chgnet"
    description: str
    licence: str
    url: str | None = None  # remote file, fetched into the cache
    bundled: Path | None = None  # file shipped in this repository
    sha256: str | None = None  # pinned checksum, when known
    pretraining_corpus: str | None = None  # bundled dataset the model was trained on, if any
    fine_tuned: tuple[str, str] | None = None  # (base model, dataset) of a fine-tuned model

    @property
    def filename(self) -> str | None:
        if self.bundled is not None:
            return self.bundled.name
        return self.url.rsplit("/", 1)[-1] if self.url else None

    @property
    def env_var(self) -> str:
        """Environment variable that may point at this model's file."""
        return "COURSE_MODEL_" + self.name.upper().replace("-", "_").replace(".", "_")


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="mace-mp-0-small",
            kind="mace",
            description="MACE-MP-0 small (128x0e, MPtrj, Batatia et al. 2023)",
            licence="MIT",
            url=f"{MACE_MP_RELEASE}/2023-12-10-mace-128-L0_energy_epoch-249.model",
        ),
        ModelSpec(
            name="mace-mp-0-medium",
            kind="mace",
            description="MACE-MP-0 medium (128x0e+128x1o, MPtrj, Batatia et al. 2023)",
            licence="MIT",
            url=f"{MACE_MP_RELEASE}/2023-12-03-mace-128-L1_epoch-199.model",
        ),
        ModelSpec(
            name="chgnet-0.3.0",
            kind="chgnet",
            description="CHGNet 0.3.0 (MPtrj, Deng et al. 2023), weights ship in the chgnet wheel",
            licence="BSD-3-Clause",
        ),
        ModelSpec(
            name="course-mini",
            kind="mace",
            description="The course's own small MACE, pre-trained on the bundled mini-MPtrj corpus",
            licence="CC-BY-4.0",
            bundled=MODELS_DIR / "course-mini.model",
            sha256="dd2cb0ff9f2dd6d77df317a9a43b35fac664518d67b2d54ab52ec2515b8fe57a",
            pretraining_corpus="mini-mptrj",
        ),
        ModelSpec(
            name="course-mini-omat",
            kind="mace",
            description=(
                "course-mini's twin: the same architecture, seed and gradient steps, pre-trained on "
                "mini-MPtrj plus the off-equilibrium mini-omat (no Li2O)"
            ),
            licence="CC-BY-4.0",
            bundled=MODELS_DIR / "course-mini-omat.model",
            sha256="2cda94d71339506ca1c90ab787c14e74c9c76f4fd3bda50d2aac4b1f2a9f934b",
            pretraining_corpus="mini-mptrj,mini-omat",
        ),
        ModelSpec(
            name="course-mini-li2o",
            kind="mace",
            description=(
                "course-mini's answer for the Li2O target: the regime its shipped learning "
                "curves rank first at N = 500 (model card)"
            ),
            licence="CC-BY-4.0",
            bundled=MODELS_DIR / "course-mini-li2o.model",
            sha256="e74de21924eb07822009cb472f552496f3b55287bb4abf05b19a44f12a288759",
            pretraining_corpus="mini-mptrj",  # the base model's corpus: one DFT setup with li2o-md
            fine_tuned=("course-mini", "li2o-md"),
        ),
    )
}


@dataclass(frozen=True)
class ModelStatus:
    """What ``course models`` shows for one model."""

    name: str
    kind: str
    description: str
    available: bool
    location: str
    size_mb: float | None
    sha256: str | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def model_cache_dir() -> Path:
    """Where downloaded weights go: ``$COURSE_MODEL_CACHE``, else mace-torch's own cache."""
    if "COURSE_MODEL_CACHE" in os.environ:
        return Path(os.environ["COURSE_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mace"


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered: {', '.join(REGISTRY)}, "
            "'auto', or a path to a MACE model file"
        ) from None


def local_file(spec: ModelSpec) -> Path | None:
    """The model's file on this machine, or None: env var, then bundled, then cache."""
    if spec.env_var in os.environ:
        path = Path(os.environ[spec.env_var]).expanduser()
        if not path.is_file():
            raise ModelUnavailableError(f"${spec.env_var} points at {path}, which is not a file")
        return path
    if spec.bundled is not None:
        return spec.bundled if spec.bundled.is_file() else None
    if spec.filename is not None:
        cached = model_cache_dir() / spec.filename
        return cached if cached.is_file() else None
    return None


def is_available(name: str) -> bool:
    """Whether the model can be loaded right now without a network."""
    spec = get_spec(name)
    if spec.kind == "chgnet":
        return _chgnet_installed()
    try:
        return local_file(spec) is not None
    except ModelUnavailableError:
        return False


def resolve_model_name(name: str | os.PathLike = AUTO) -> str:
    """Turn ``"auto"`` into a registered name; other names and paths pass through.

    ``auto`` is MACE-MP-0 small when its weights are present, else the bundled
    course-mini, else CHGNet (which ships with its package).
    """
    if str(name) != AUTO:
        return str(name)
    for candidate in ("mace-mp-0-small", "course-mini", "chgnet-0.3.0"):
        if is_available(candidate):
            return candidate
    raise ModelUnavailableError("no model is available offline; run `course doctor`")


def list_models() -> list[ModelStatus]:
    statuses = []
    for spec in REGISTRY.values():
        if spec.kind == "chgnet":
            available = _chgnet_installed()
            location, size, digest = "inside the chgnet package", None, None
        else:
            try:
                path = local_file(spec)
            except ModelUnavailableError as err:
                path, location = None, str(err)
            available = path is not None
            if path is not None:
                location = str(path)
            elif spec.url:
                location = f"not downloaded (cache: {model_cache_dir()})"
            else:
                location = f"missing: {spec.bundled}"
            size = round(path.stat().st_size / 1e6, 2) if path else None
            digest = expected_sha256(spec)
        statuses.append(
            ModelStatus(spec.name, spec.kind, spec.description, available, location, size, digest)
        )
    return statuses


def fetch(name: str, *, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download a registered model into the cache (once) and return its verified path.

    The download goes to a temporary file that is renamed only when complete,
    so an interrupted download leaves nothing behind. Offline, raises
    ``ModelUnavailableError`` saying how to place the file by hand.
    """
    import pooch

    spec = get_spec(name)
    existing = local_file(spec) if spec.kind == "mace" else None
    if existing is not None:
        verify(spec, existing)
        return existing
    if spec.url is None:
        raise ModelUnavailableError(
            f"{name} has nothing to download ({'ships with its package' if spec.kind == 'chgnet' else f'expected at {spec.bundled}'})"
        )
    cache = model_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    known = expected_sha256(spec)
    try:
        path = pooch.retrieve(
            url=spec.url,
            known_hash=f"sha256:{known}" if known else None,
            fname=spec.filename,
            path=cache,
            progressbar=progress,
            downloader=pooch.HTTPDownloader(timeout=timeout, progressbar=progress),
        )
    except ValueError as err:  # pooch reports a checksum mismatch as ValueError
        raise ModelIntegrityError(f"{name}: downloaded file failed its checksum: {err}") from err
    except Exception as err:  # requests' connection, timeout and HTTP errors
        raise ModelUnavailableError(offline_message(spec, reason=str(err))) from err
    path = Path(path)
    verify(spec, path)
    return path


def offline_message(spec: ModelSpec, *, reason: str = "") -> str:
    lines = [f"could not fetch {spec.name} from {spec.url}" + (f" ({reason})" if reason else "")]
    lines.append("This machine may be offline. To use the model anyway, either:")
    lines.append(f"  - download {spec.filename} elsewhere and copy it to {model_cache_dir()}/,")
    lines.append(f"  - or set {spec.env_var}=/path/to/{spec.filename}.")
    lines.append("Offline, the course runs on course-mini or chgnet-0.3.0 (model = 'auto').")
    return "\n".join(lines)


def model_file(name_or_path: str | os.PathLike) -> Path:
    """Path of a MACE model (registered name or file path), verified before any unpickling."""
    name = resolve_model_name(name_or_path)
    if name in REGISTRY:
        spec = REGISTRY[name]
        if spec.kind != "mace":
            raise ValueError(f"{name} is a {spec.kind} model, not a MACE file")
        path = local_file(spec)
        if path is not None:
            verify(spec, path)
            return path
        if spec.url is None:
            raise ModelUnavailableError(f"{name}: file {spec.bundled} is missing")
        return fetch(name)
    path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{name!r} is neither a registered model ({', '.join(REGISTRY)}) nor a file"
        )
    verify(ModelSpec(name=str(path), kind="mace", description="", licence=""), path)
    return path


def expected_sha256(spec: ModelSpec) -> str | None:
    """Pinned in the registry, else pinned in course.toml, else recorded on first use."""
    return spec.sha256 or _config_pins().get(spec.name) or _recorded_hashes().get(spec.name)


def verify(spec: ModelSpec, path: Path) -> str:
    """Check ``path`` against the expected sha256; record it if none is known yet.

    A file that is not a PyTorch archive at all (empty, random bytes, an
    interrupted download) raises ``NotAModelFileError`` and is never recorded,
    so a real model put there later is trusted on its own first use.
    """
    digest = sha256_of(path)
    expected = spec.sha256 or _config_pins().get(spec.name)
    key = _hash_key(spec, path)
    recorded = _recorded_hashes().get(key)
    expected = expected or recorded
    if expected is not None and digest != expected:
        raise ModelIntegrityError(
            f"{path}: sha256 {digest} does not match the expected {expected}; "
            "the file was not loaded. Delete it and fetch it again, or, if you replaced "
            "it on purpose, update the pin in course.toml."
        )
    if not _is_torch_file(path):
        reason = "it is empty" if path.stat().st_size == 0 else "it is not a PyTorch archive"
        raise NotAModelFileError(not_a_model_message(spec, path, reason))
    if expected is None:
        _record_hash(key, digest)
        logger.warning(
            "first use of %s: recorded sha256 %s (pin it under [models.sha256] in course.toml)",
            spec.name,
            digest,
        )
    return digest


def not_a_model_message(spec: ModelSpec, path: Path, reason: str) -> str:
    """One line: which file is not a MACE model, why, and what to pass instead."""
    if spec.name in REGISTRY:
        remedy = f"delete it and run `course fetch {spec.name}`, or place the file by hand"
    else:
        remedy = (
            "pass a .model file saved by mace-torch or `course finetune`, "
            f"or a registered model ({', '.join(REGISTRY)})"
        )
    size = path.stat().st_size if path.exists() else 0
    return f"{path} ({size} bytes) is not a MACE model file: {reason}; {remedy}"


def _is_torch_file(path: Path) -> bool:
    """Whether ``path`` looks like a ``torch.save`` file (zip archive or legacy pickle), unread."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        return handle.read(len(_LEGACY_TORCH_MAGIC)) == _LEGACY_TORCH_MAGIC


def resolve_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_mace_model(
    name_or_path: str | os.PathLike = AUTO, *, device: str = "auto", dtype: str = "float64"
):
    """A MACE model as a ``torch.nn.Module`` (eval mode), after its checksum passed."""
    import mace  # noqa: F401  (mace before e3nn: e3nn alone fails on torch 2.13's weights_only)
    import torch

    path = model_file(name_or_path)
    spec = _spec_for(name_or_path, path)
    try:
        model = torch.load(path, map_location=resolve_device(device), weights_only=False)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as err:
        _forget_hash(_hash_key(spec, path))
        reason = f"torch.load failed ({type(err).__name__}: {err})"
        raise NotAModelFileError(not_a_model_message(spec, path, reason)) from err
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "atomic_numbers")):
        _forget_hash(_hash_key(spec, path))
        reason = f"it holds a {type(model).__name__}, not a MACE model"
        raise NotAModelFileError(not_a_model_message(spec, path, reason))
    model = model.double() if dtype == "float64" else model.float()
    return model.eval()


def load_calculator(
    name_or_path: str | os.PathLike = AUTO, *, device: str = "auto", dtype: str = "float64"
):
    """An ASE calculator for a registered model, ``"auto"``, or a MACE file path."""
    name = resolve_model_name(name_or_path)
    if name in REGISTRY and REGISTRY[name].kind == "chgnet":
        import contextlib
        import sys

        from chgnet.model import CHGNet, CHGNetCalculator

        # CHGNet prints banners on stdout; keep stdout clean for `--json` output.
        with contextlib.redirect_stdout(sys.stderr):
            model = CHGNet.load(model_name="0.3.0", verbose=False)
            return CHGNetCalculator(model, use_device=resolve_device(device))
    from mace.calculators import MACECalculator

    path = model_file(name)
    return MACECalculator(model_paths=str(path), device=resolve_device(device), default_dtype=dtype)


def model_elements(name_or_path: str | os.PathLike = AUTO) -> list[str] | None:
    """Chemical symbols a model was trained on (None: the whole periodic table it supports)."""
    from ase.data import chemical_symbols

    name = resolve_model_name(name_or_path)
    if name in REGISTRY and REGISTRY[name].kind == "chgnet":
        return chemical_symbols[1:95]
    model = load_mace_model(name, device="cpu")
    return [chemical_symbols[int(z)] for z in model.atomic_numbers]


def record_sha256(path: str | os.PathLike) -> str:
    """Record the sha256 of a model file this course wrote, so later loads verify against it."""
    path = Path(path)
    digest = sha256_of(path)
    _record_hash(str(path.resolve()), digest)
    return digest


def fine_tuned_model(base: str | os.PathLike, dataset: str | os.PathLike) -> str | None:
    """The registered model fine-tuned from ``base`` on ``dataset`` (e.g. course-mini-li2o)."""
    key = (resolve_model_name(base), Path(str(dataset)).stem)
    return next((s.name for s in REGISTRY.values() if s.fine_tuned == key), None)


def pretraining_corpus(name_or_path: str | os.PathLike) -> str | None:
    """The bundled dataset a registered model was pre-trained on (for forgetting checks)."""
    spec = REGISTRY.get(str(name_or_path))
    return spec.pretraining_corpus if spec else None


def _chgnet_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("chgnet") is not None


def _spec_for(name_or_path: str | os.PathLike, path: Path) -> ModelSpec:
    name = resolve_model_name(name_or_path)
    return REGISTRY.get(name) or ModelSpec(name=str(path), kind="mace", description="", licence="")


def _hash_key(spec: ModelSpec, path: Path) -> str:
    """Recorded hashes are kept by registered name, else by the file's absolute path."""
    return spec.name if spec.name in REGISTRY else str(path.resolve())


def _hash_file() -> Path:
    return model_cache_dir() / "course-known-hashes.json"


def _recorded_hashes() -> dict:
    path = _hash_file()
    return json.loads(path.read_text()) if path.exists() else {}


def _record_hash(key: str, digest: str) -> None:
    hashes = _recorded_hashes()
    hashes[key] = digest
    atomic_write_text(_hash_file(), json.dumps(hashes, indent=2) + "\n")


def _forget_hash(key: str) -> None:
    """Drop a hash recorded for a file that turned out not to be a model."""
    hashes = _recorded_hashes()
    if hashes.pop(key, None) is not None:
        atomic_write_text(_hash_file(), json.dumps(hashes, indent=2) + "\n")


def _config_pins() -> dict:
    return load_config().model_pins
