"""Package the simulator as an Ollama release archive (bin/ollama), for offline installs in the lab.

The archive has the layout of Ollama's own (bin/ollama, lib/ollama/), so the deploy's
`ollama_artifact` path installs it exactly as it would install a real release. `bin/ollama` is a
Python zip application holding the simulator and its pure-Python dependencies; it needs
python3 (3.11 or newer) on the host. The bytes are reproducible: same code, same archive,
same sha256, so re-deploys see no change.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ollama_fleet.fsutil import atomic_write
from ollama_fleet.simulator.ollama_cli import LABEL, VERSION

# The simulator's imports, transitively: all pure Python.
BUNDLED = ("starlette", "uvicorn", "h11", "anyio", "sniffio", "idna", "click", "typing_extensions")
OWN_FILES = ("__init__.py", "errors.py", "fsutil.py")  # the simulator's own imports
EPOCH = (1980, 1, 1, 0, 0, 0)
MAIN = "from ollama_fleet.simulator.ollama_cli import main\nraise SystemExit(main())\n"
README = f"""{LABEL}.

This archive has the layout of an Ollama release (bin/ollama, lib/ollama/) but bin/ollama is
the ollama-fleet Ollama API simulator, version {VERSION}. It exists because the real Ollama
binary cannot be downloaded on ollama-fleet's build machines. Do not use it in production.
"""


@dataclass(frozen=True, slots=True)
class Artifact:
    path: Path
    sha256: str
    version: str


def _sources(name: str) -> list[tuple[str, Path]]:
    """(archive name, file) for every source file of the top-level module `name`."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"cannot bundle {name}: not installed")
    origin = Path(spec.origin)
    if spec.submodule_search_locations is None:
        return [(origin.name, origin)]
    root = origin.parent
    return [
        (f"{name}/{path.relative_to(root).as_posix()}", path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def _zipapp() -> bytes:
    package = Path(__file__).resolve().parents[1]
    entries: list[tuple[str, bytes]] = [("__main__.py", MAIN.encode())]
    entries += [(f"ollama_fleet/{n}", (package / n).read_bytes()) for n in OWN_FILES]
    entries += [
        (f"ollama_fleet/simulator/{path.name}", path.read_bytes())
        for path in sorted((package / "simulator").glob("*.py"))
    ]
    for module in BUNDLED:
        entries += [(arcname, path.read_bytes()) for arcname, path in _sources(module)]
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
        for arcname, data in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _tar_member(name: str, data: bytes, mode: int) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info, io.BytesIO(data)


def build_artifact(out_dir: Path) -> Artifact:
    """Write ollama-linux-amd64-simulator.tgz into `out_dir` (atomically) and return it."""
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for directory in ("bin", "lib", "lib/ollama"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            info.uname = info.gname = "root"
            tar.addfile(info)
        tar.addfile(*_tar_member("bin/ollama", _zipapp(), 0o755))
        tar.addfile(*_tar_member("lib/ollama/SIMULATOR.txt", README.encode(), 0o644))
    data = raw.getvalue()
    path = out_dir / "ollama-linux-amd64-simulator.tgz"
    atomic_write(path, data, mode=0o644, what="simulator artifact")
    return Artifact(path=path, sha256=hashlib.sha256(data).hexdigest(), version=VERSION)
