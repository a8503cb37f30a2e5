"""`vault edit` of a YAML file with `!vault` values: a decrypted view, and the edit written back.

The view is the file with each `!vault` value shown decrypted, tagged `!vault-plain` (a
literal block for a text of several lines, else a double-quoted string), under a three-line
note that is not saved. Writing back, a value whose text did not change keeps its vault
text byte for byte (a diff shows only what changed), a changed or new `!vault-plain` value
is encrypted with the file's password, and every other byte is what the user left in the view.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from ollama_fleet.errors import ConfigError
from ollama_fleet.vault import (
    LINE_BREAKS,
    VAULT_TAG,
    VaultError,
    VaultPassword,
    VaultValue,
    decrypt_text,
    find_vault_values,
    line_ending,
    sealer,
    split_lines,
)

PLAIN_TAG = "!vault-plain"
BANNER = (
    f"# ollama-fleet vault edit: each {PLAIN_TAG} value is a {VAULT_TAG} value, decrypted. Change",
    f"# one, or tag a new value {PLAIN_TAG}, and it is encrypted when you save; a value without",
    "# the tag stays in clear text. These three lines are not saved.",
)

KeyPath = tuple[object, ...]  # where a value sits: document index, then keys and list indices
_BREAK = re.compile(f"[{LINE_BREAKS}]")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShownValue:
    """One vault value of the file as the view shows it; its repr holds no plaintext."""

    path: KeyPath
    plaintext: str = field(repr=False)
    vaulttext: str = field(repr=False)
    original: str = field(repr=False)  # the file's text from the tag to the end of the block
    shown: str = field(repr=False)  # the view's text from the tag to the end of the value


@dataclass(frozen=True, slots=True, kw_only=True)
class EditView:
    """What the editor gets (`text`), and what it takes to write the edit back."""

    text: str = field(repr=False)
    banner: tuple[str, ...]  # the note's lines, with their line breaks
    values: tuple[ShownValue, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EditResult:
    """The file's new text, and what happened to its vault values."""

    text: str = field(repr=False)
    unchanged: int
    changed: int
    added: int
    removed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _Span:
    """A `!vault-plain` value in a text: from its tag to the end of its last line."""

    path: KeyPath
    value: str = field(repr=False)
    line: int  # 1-based line of the tag
    start: int  # offset of the tag
    end: int  # offset of the end of the value's last line, before its line break
    comment: str  # a comment after the value, "" if none
    indent: int  # the indentation a block in its place needs


def edit_view(text: str, password: VaultPassword, *, where: str) -> EditView:
    """The decrypted view of `text` for an editor; VaultError if a value does not open."""
    if spans := _plain_spans(text, where=where):
        raise ConfigError(
            f"{where}: line {spans[0].line}: holds a {PLAIN_TAG} tag, which vault edit uses "
            "for decrypted values; rename that tag first"
        )
    values = list({(v.line, v.column): v for v in find_vault_values(text, where=where)}.values())
    paths = {
        (n.start_mark.line + 1, n.start_mark.column): p for n, p, _, _ in _walk(text, VAULT_TAG)
    }
    plaintexts = [
        decrypt_text(v.vaulttext, password, where=f"{where}: line {v.line}", what="vault value")
        for v in values
    ]
    lines = split_lines(text)
    blocks = [_fits_a_block(p) for p in plaintexts]
    for _ in range(2):
        viewed, originals, rendered = _render_view(lines, values, plaintexts, blocks, where=where)
        wrong = _misshown(viewed, plaintexts, rendered, where=where)
        if not wrong:
            break
        blocks = [block and i not in wrong for i, block in enumerate(blocks)]
    else:  # a double-quoted string holds any text: only a bug gets here
        raise VaultError(f"{where}: cannot show the vault values for editing")
    ending = (line_ending(lines[0]) if lines else "") or "\n"
    banner = tuple(f"{line}{ending}" for line in BANNER)
    shown_values = tuple(
        ShownValue(
            path=paths[(v.line, v.column)], plaintext=p, vaulttext=v.vaulttext, original=o, shown=r
        )
        for v, p, o, r in zip(values, plaintexts, originals, rendered, strict=True)
    )
    return EditView(text="".join(banner) + viewed, banner=banner, values=shown_values)


def _render_view(
    lines: list[str],
    values: list[VaultValue],
    plaintexts: list[str],
    blocks: list[bool],
    *,
    where: str,
) -> tuple[str, list[str], list[str]]:
    """The view's text, and each value's text from its tag in the file and in the view."""
    view, originals, rendered = lines.copy(), list[str](), list[str]()
    for value, plaintext, block in reversed(list(zip(values, plaintexts, blocks, strict=True))):
        tag_line, last = lines[value.line - 1], line_ending(lines[value.stop - 1])
        if not tag_line[value.column :].startswith(VAULT_TAG):
            raise ConfigError(
                f"{where}: line {value.line}: a {VAULT_TAG} value with an anchor (&name) "
                "cannot be edited; remove the anchor"
            )
        comment = _comment(tag_line[value.column + len(VAULT_TAG) :].rstrip(LINE_BREAKS))
        ending = line_ending(tag_line) or "\n"
        shown = _render(plaintext, value.indent, ending, comment, block=block)
        view[value.line - 1 : value.stop] = [f"{tag_line[: value.column]}{shown}{last}"]
        block_text = "".join(lines[value.line - 1 : value.stop])
        originals.insert(0, block_text[value.column : len(block_text) - len(last)])
        rendered.insert(0, shown)
    return "".join(view), originals, rendered


def _misshown(viewed: str, plaintexts: list[str], rendered: list[str], *, where: str) -> set[int]:
    """The values the view does not read back as shown: they must be shown quoted."""
    try:
        spans = _plain_spans(viewed, where=where)
    except ConfigError:  # a block broke the view: show every value quoted
        return set(range(len(plaintexts)))
    return {
        i
        for i, (span, plaintext, shown) in enumerate(zip(spans, plaintexts, rendered, strict=True))
        if span.value != plaintext or viewed[span.start : span.end] != shown
    }


def apply_edit(view: EditView, edited: str, password: VaultPassword, *, where: str) -> EditResult:
    """The file's text after `edited`, the view as the user saved it; ConfigError if invalid.

    A `!vault-plain` value whose text is a value's old text keeps that value's vault text
    (one use each, the same place first); any other is encrypted, all with one new salt.
    """
    here = f"{where}: the edited text"
    spans = _plain_spans(edited, where=here)
    find_vault_values(edited, where=here)  # a pasted !vault value must be a literal block
    known = {v.vaulttext.strip(): v.plaintext for v in view.values}
    expected = _load(edited, known, where=here)
    unused = list(view.values)
    seal: Callable[[bytes], str] | None = None
    old_paths, new_paths = {v.path for v in view.values}, {s.path for s in spans}
    unchanged = changed = added = 0
    text = edited
    for span in reversed(spans):
        first = split_lines(edited[span.start : _line_end(edited, span.start) + 2])[0]
        ending = line_ending(first) or "\n"
        old = _same_text(unused, span)
        if old is not None:
            unused.remove(old)
            unchanged += 1
            if edited[span.start : span.end] == old.shown:
                block = old.original
            else:
                block = _vault_block(old.vaulttext, span, ending)
        else:
            seal = seal or sealer(password)
            vaulttext = seal(span.value.encode("utf-8"))
            known[vaulttext.strip()] = span.value
            block = _vault_block(vaulttext, span, ending)
            changed, added = (
                (changed + 1, added) if span.path in old_paths else (changed, added + 1)
            )
        text = text[: span.start] + block + text[span.end :]
    for line in view.banner:
        text = text.removeprefix(line)
    if _load(text, known, where=where) != expected:  # only a bug gets here
        raise VaultError(f"{where}: the edit cannot be written back as it reads")
    removed = sum(1 for v in unused if v.path not in new_paths)
    return EditResult(text=text, unchanged=unchanged, changed=changed, added=added, removed=removed)


def _same_text(unused: list[ShownValue], span: _Span) -> ShownValue | None:
    """The old value `span` may keep: same text, at the same place if there is one."""
    same = [v for v in unused if v.plaintext == span.value]
    return next((v for v in same if v.path == span.path), same[0] if same else None)


def _vault_block(vaulttext: str, span: _Span, ending: str) -> str:
    comment = f"  {span.comment}" if span.comment else ""
    pad = " " * span.indent
    return f"{VAULT_TAG} |{comment}" + "".join(
        f"{ending}{pad}{line}" for line in vaulttext.splitlines()
    )


def _fits_a_block(plaintext: str) -> bool:
    """Whether a literal block could show `plaintext` (a parse of the view confirms it)."""
    lines = plaintext.removesuffix("\n").split("\n")
    first = next((line for line in lines if line), "")
    return (
        len(lines) > 1
        and not first.startswith((" ", "\t"))  # the first line with text sets the indent
        and lines[-1].strip() != ""  # a block ends at its last line with text
        and not yaml.reader.Reader.NON_PRINTABLE.search(plaintext)
        and not any(c in plaintext for c in LINE_BREAKS.replace("\n", ""))
    )


def _render(plaintext: str, indent: str, ending: str, comment: str, *, block: bool) -> str:
    """`plaintext` tagged !vault-plain: a literal block indented by `indent`, or quoted."""
    after = f"  {comment}" if comment else ""
    if not block:
        quoted = yaml.dump(plaintext, default_style='"', allow_unicode=True, width=float("inf"))
        return f"{PLAIN_TAG} {quoted.rstrip()}{after}"
    chomp = "" if plaintext.endswith("\n") else "-"
    body = plaintext.removesuffix("\n").split("\n")
    return f"{PLAIN_TAG} |{chomp}{after}" + "".join(
        f"{ending}{indent}{line}" if line else ending for line in body
    )


def _comment(rest: str) -> str:
    """The comment on a block's indicator line (`!vault |  # rotated in May`), or ""."""
    match = re.search(r"[ \t](#.*)\Z", rest)
    return match[1] if match else ""


def _walk(text: str, tag: str) -> list[tuple[yaml.Node, KeyPath, yaml.Node | None, bool]]:
    """The nodes tagged `tag` in `text`, each once: the node, its path, parent, is it a key."""
    found: list[tuple[yaml.Node, KeyPath, yaml.Node | None, bool]] = []
    seen: set[int] = set()

    def visit(node: yaml.Node, path: KeyPath, parent: yaml.Node | None, key: bool) -> None:
        if id(node) in seen:  # an alias: the node was met at its anchor
            return
        seen.add(id(node))
        if node.tag == tag:
            found.append((node, path, parent, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                visit(child, (*path, index), node, False)
        elif isinstance(node, yaml.MappingNode):
            for name, child in node.value:
                step = name.value if isinstance(name, yaml.ScalarNode) else "?"
                visit(name, (*path, step), node, True)
                visit(child, (*path, step), node, False)

    for index, document in enumerate(yaml.compose_all(text, Loader=yaml.SafeLoader)):
        if document is not None:
            visit(document, (index,), None, False)
    return found


def _plain_spans(text: str, *, where: str) -> list[_Span]:
    """Every `!vault-plain` value of `text`, in file order; ConfigError for one that cannot be."""
    if PLAIN_TAG not in text:
        return []
    try:
        nodes = _walk(text, PLAIN_TAG)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, where) from None
    spans: list[_Span] = []
    for node, path, parent, key in nodes:
        if key:
            problem = "is a key; only values can be vault values"
        elif not isinstance(node, yaml.ScalarNode):
            problem = "must be a string, not a list or a mapping"
        elif isinstance(parent, yaml.CollectionNode) and parent.flow_style:
            problem = (
                "is inside a flow collection ([...] or {...}); write that collection as a "
                "block to keep a vault value in it"
            )
        elif not text.startswith(PLAIN_TAG, node.start_mark.index):
            problem = "cannot have an anchor (&name)"
        else:
            spans.append(_span(text, node, path, parent))
            continue
        raise ConfigError(
            f"{where}: line {node.start_mark.line + 1}: a {PLAIN_TAG} value {problem}"
        )
    return sorted(spans, key=lambda span: span.start)


def _span(text: str, node: yaml.ScalarNode, path: KeyPath, parent: yaml.Node | None) -> _Span:
    start, end = node.start_mark.index, node.end_mark.index
    if node.style in ("|", ">"):
        # a block ends at its last line with text; the blank lines it took are the file's
        end = _line_end(text, len(text[:end].rstrip(f" \t{LINE_BREAKS}")))
        comment = _comment(text[start : _line_end(text, start)])
    else:
        rest = text[end : _line_end(text, end)]
        comment, end = rest.strip(), end + len(rest)
    return _Span(
        path=path,
        value=node.value,
        line=node.start_mark.line + 1,
        start=start,
        end=end,
        comment=comment,
        indent=_block_indent(parent),
    )


def _block_indent(parent: yaml.Node | None) -> int:
    """How far a block's lines must be indented in `parent`: past its keys, or at its items."""
    if isinstance(parent, yaml.MappingNode):
        return int(parent.value[0][0].start_mark.column) + 2
    if isinstance(parent, yaml.SequenceNode):
        return int(parent.value[0].start_mark.column)
    return 2


def _line_end(text: str, offset: int) -> int:
    """The offset of the line break ending the line `offset` is on (or of the text's end)."""
    match = _BREAK.search(text, offset)
    return match.start() if match else len(text)


def _load(text: str, known: dict[str, str], *, where: str) -> list[Any]:
    """The documents of `text`, each vault value read as its plaintext where it is known."""

    def plain(loader: yaml.SafeLoader, node: yaml.Node) -> object:
        return ("vault value", str(node.value))

    def vault(loader: yaml.SafeLoader, node: yaml.Node) -> object:
        vaulttext = str(node.value).strip()
        return (
            ("vault value", known[vaulttext]) if vaulttext in known else ("vault text", vaulttext)
        )

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor(PLAIN_TAG, plain)
    Loader.add_constructor(VAULT_TAG, vault)
    try:
        return list(yaml.load_all(text, Loader=Loader))  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, where) from None


def _yaml_error(exc: yaml.MarkedYAMLError, where: str) -> ConfigError:
    mark = exc.problem_mark
    at = f"line {mark.line + 1}: " if mark else ""
    return ConfigError(f"{where}: {at}not valid YAML: {exc.problem}")
