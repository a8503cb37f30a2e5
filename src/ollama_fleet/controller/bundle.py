"""This project's services as a bundle the hosts install offline: its wheel and dependencies."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_fleet.controller.release import file_sha256
from ollama_fleet.errors import ConfigError, FleetError
from ollama_fleet.fsutil import atomic_write


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """This project's wheel and every wheel it needs on a host, in one reproducible archive.

    Hosts install from it with `pip --no-index`: no index, proxy or internet needed on them.
    """

    path: Path
    sha256: str
    wheel: str  # the project's wheel file name inside the archive
    requirements: tuple[str, ...]
    requires_python: str = field(default_factory=lambda: project_requires_python())

    def as_data(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "filename": self.path.name,
            "sha256": self.sha256,
            "wheel": self.wheel,
            "requirements": list(self.requirements),
            "requires_python": self.requires_python,
        }


def project_requires_python() -> str:
    """The wheel's Requires-Python, which the services role checks each host's python3 against."""
    from importlib.metadata import metadata

    return str(metadata("ollama-fleet")["Requires-Python"] or "")


# Python versions of the supported hosts: Ubuntu 22.04 (3.10), Debian 12 (3.11), Ubuntu 24.04
HOST_PYTHONS = ("3.10", "3.11", "3.12")
# `pip download --python-version` reads `python_full_version` markers off the controller's own
# interpreter, so a dependency only some patch releases need (redis: async-timeout below
# 3.11.3; Debian 12 has 3.11.2) would be left out; the wheels' markers are read again for the
# earliest patch release of each host version (which needs the most)
HOST_FULL_VERSIONS = {version: f"{version}.0" for version in HOST_PYTHONS}
HOST_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def project_root() -> Path | None:
    """The source checkout this package runs from, or None when it was installed from a wheel."""
    root = Path(__file__).resolve().parents[3]  # src/ollama_fleet/controller/bundle.py
    return root if (root / "pyproject.toml").is_file() and (root / "src").is_dir() else None


def service_requirements() -> tuple[str, ...]:
    """The distribution's requirements minus pyinfra (hosts run checks, never deploys)."""
    from importlib.metadata import requires

    wanted = []
    for requirement in requires("ollama-fleet") or []:
        if "extra ==" in requirement or requirement.lower().startswith("pyinfra"):
            continue
        wanted.append(requirement.split(";")[0].strip())
    return tuple(wanted)


def _sources_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in [root / "pyproject.toml", *sorted((root / "src").rglob("*"))]:
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _pip(*args: str) -> None:
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", *args], check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise FleetError(f"services: pip {args[0]} failed: {last[0]}") from None


def _download(wheels: Path, version: str, requirements: list[str]) -> None:
    platforms = [arg for p in HOST_PLATFORMS for arg in ("--platform", p)]
    _pip(
        "download", "-q", "-d", str(wheels), "--only-binary=:all:",
        "--python-version", version, *platforms, *requirements,
    )  # fmt: skip


def patch_requirements(wheels: Path, full_version: str) -> list[str]:
    """Requirements of the wheels in `wheels` that hold only by a `python_full_version`
    marker and do hold on a host Python `full_version` (without their markers)."""
    import zipfile

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    environment: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    environment |= {
        "python_full_version": full_version,
        "python_version": ".".join(full_version.split(".")[:2]),
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    found = []
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            text = archive.read(names[0]).decode("utf-8", "replace") if names else ""
        for line in text.splitlines():
            if not line.startswith("Requires-Dist:") or "python_full_version" not in line:
                continue
            requirement = Requirement(line.removeprefix("Requires-Dist:").strip())
            if requirement.marker is not None and requirement.marker.evaluate(environment):
                requirement.marker = None
                found.append(str(requirement))
    return found


def _has_wheel(wheels: Path, requirement: str) -> bool:
    """Whether a wheel of `requirement`'s project is in `wheels` already."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename

    name = canonicalize_name(Requirement(requirement).name)
    return any(parse_wheel_filename(w.name)[0] == name for w in wheels.glob("*.whl"))


def build_bundle(cache_dir: Path, *, build: bool = True) -> Bundle:
    """Build (or reuse, keyed by the sources' hash) the services bundle on the controller.

    `build=False` (a dry run): a bundle not cached yet is not built (pip would need an
    index); the Bundle has no sha256, and the services role plans it as built on apply.
    """
    import io
    import tarfile

    root = project_root()
    if root is None:
        raise ConfigError(
            "services: this ollama-fleet is not a source checkout, so its wheel cannot be built; "
            "run the deploy from a checkout (or set services_enabled: false)"
        )
    requirements = service_requirements()
    key = hashlib.sha256(
        (
            _sources_digest(root) + "\n".join(requirements + HOST_PYTHONS) + "\npatch-markers"
        ).encode()
    ).hexdigest()[:16]
    folder = cache_dir / "bundles" / key
    archive = folder / f"ollama-fleet-services-{key}.tar"
    if not archive.is_file() and not build:
        from ollama_fleet import __version__

        wheel = f"ollama_fleet-{__version__}-py3-none-any.whl"
        return Bundle(path=archive, sha256="", wheel=wheel, requirements=requirements)
    if not archive.is_file():
        work = cache_dir / "bundles" / f".{key}.tmp"
        if work.exists():
            import shutil

            shutil.rmtree(work)
        wheels = work / "wheels"
        _pip("wheel", "--no-deps", "-q", "-w", str(wheels), str(root))
        for version in HOST_PYTHONS:
            wanted = list(requirements)
            while wanted:
                _download(wheels, version, wanted)
                wanted = sorted(set(patch_requirements(wheels, HOST_FULL_VERSIONS[version])))
                wanted = [r for r in wanted if not _has_wheel(wheels, r)]
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            listing = "\n".join(requirements) + "\n"
            entries = [("requirements.txt", listing.encode())] + [
                (f"wheels/{p.name}", p.read_bytes()) for p in sorted(wheels.glob("*.whl"))
            ]
            for name, data in entries:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                info.uname = info.gname = "root"
                tar.addfile(info, io.BytesIO(data))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "wheel").write_text(next(wheels.glob("ollama_fleet-*.whl")).name)
        # the archive last: it marks the folder complete
        atomic_write(archive, raw.getvalue(), mode=0o644, what="services bundle")
        import shutil

        shutil.rmtree(work)
    return Bundle(
        path=archive,
        sha256=file_sha256(archive),
        wheel=(folder / "wheel").read_text().strip(),
        requirements=requirements,
    )


# -- the child process -------------------------------------------------------------------------
