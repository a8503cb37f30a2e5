"""The lab package loads its parts on first use (ollama-fleet --help stays fast)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import ollama_fleet.lab as lab


def test_no_lazy_name_is_also_a_submodule() -> None:
    # `import ollama_fleet.lab.x` binds the package attribute x to the module: a function
    # of the same name would then be shadowed by it
    submodules = {info.name for info in pkgutil.iter_modules(lab.__path__)}

    assert not set(lab.__all__) & submodules


def test_every_lazy_name_resolves_to_what_its_module_defines() -> None:
    for name in lab.__all__:
        assert getattr(lab, name) is not None, name


def test_importing_the_package_loads_none_of_its_machinery() -> None:
    code = (
        "import sys, ollama_fleet.lab; print(sorted(m for m in sys.modules"
        " if 'uvicorn' in m or m.startswith('ollama_fleet.lab.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"


def test_the_checks_package_is_lazy_too() -> None:
    import ollama_fleet.checks as checks

    assert set(checks.__all__) == set(checks._WHERE)
    code = (
        "import sys, ollama_fleet.checks.model; print(sorted(m for m in sys.modules"
        " if m.startswith(('httpx', 'ollama_fleet.checks.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "['ollama_fleet.checks.model']"
