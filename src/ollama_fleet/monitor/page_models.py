"""The status page's models block: required, present and loaded models, with their VRAM."""

from __future__ import annotations

from .model import TargetView
from .page_format import size, time_tag
from .status_facts import markup, missing_models, models_known


def models_block(target: TargetView, *, now: float) -> str:
    """Required models (present or missing), those on the host, and those loaded, with VRAM."""
    if not (target.models_required or target.models_present or target.models_loaded):
        return ""
    parts = ["<h4>Models</h4>"]
    missing = set(missing_models(target))
    if target.models_required:
        items = "".join(
            _required(name, missing, known=models_known(target)) for name in target.models_required
        )
        found = (
            f"{len(target.models_required) - len(missing)} of {len(target.models_required)} present"
            if models_known(target)
            else "not checked yet"
        )
        parts.append(f'<p class="muted">Required: {found}</p><ul class="model-list">{items}</ul>')
    if target.models_present:
        names = ", ".join(target.models_present)
        parts.append(
            f'<p class="present wrap"><span class="muted">On the host '
            f"({len(target.models_present)}):</span> {markup(names)}</p>"
        )
    if target.models_loaded:
        parts.append(f'<ul class="loaded-list">{"".join(_loaded(target, now=now))}</ul>')
    elif target.status is not None:
        parts.append('<p class="none">No model loaded in memory.</p>')
    return f'<div class="models">{"".join(parts)}</div>'


def _required(name: str, missing: set[str], *, known: bool) -> str:
    if not known:
        state, mark, note = "unknown", "…", ""
    elif name in missing:
        state, mark, note = "false", "✕", " (missing)"
    else:
        state, mark, note = "true", "✓", ""
    return (
        f'<li class="model" data-model="{markup(name)}" data-present="{state}">'
        f"{mark} {markup(name)}{note}</li>"
    )


def _loaded(target: TargetView, *, now: float) -> list[str]:
    items = []
    for model in target.models_loaded:
        total = max(model.size_bytes, 0)
        share = model.vram_bytes / total if total else 0.0
        if model.vram_bytes <= 0:
            where = '<span class="on-cpu">on the CPU (no VRAM)</span>'
        elif share < 0.999:
            where = (
                f'{size(model.vram_bytes)} of {size(total)} in VRAM <span class="on-cpu">'
                f"({share:.0%}; the rest on the CPU)</span>"
            )
        else:
            where = f"{size(model.vram_bytes)} in VRAM"
        until = (
            " · kept loaded"
            if model.expires_at is None
            else f" · unloads {time_tag(model.expires_at, now=now)}"
        )
        items.append(
            f'<li class="loaded" data-model="{markup(model.name)}"'
            f' data-vram-bytes="{int(model.vram_bytes)}">'
            f"<b>{markup(model.name)}</b> loaded: {where}{until}</li>"
        )
    return items
