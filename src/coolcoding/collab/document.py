"""One shared document: a pycrdt ``Doc`` whose ``content`` text is a workspace file, with its
awareness (remote cursors) and the base it was last saved as.

Every incoming update is validated before it touches the document: its size, that it decodes
(applied first to an empty scratch document, so a malformed update raises there, never half way
into the real one), and that the text stays under the document limit (checked on a copy when
the update could cross it). A change made outside the editor is merged as a branch from the
saved base (see ``merge_external``), so concurrent edits are kept and cursors survive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pycrdt import Awareness, Doc, Text

from coolcoding.collab.textdiff import edits

TEXT = "content"
EMPTY_UPDATE = b"\x00\x00"


class UpdateRefused(ValueError):
    """An update that was not applied; ``code`` names why (docs/API.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Base:
    """What the DB holds: ``text`` at ``version``; ``state`` is a document update whose text is
    exactly ``text`` and whose items every copy of the document contains (a common ancestor)."""

    version: int
    text: str
    state: bytes
    epoch: str


def initial_base(session_uuid: str, path: str, version: int, text: str) -> Base:
    """The first state of a document, the same on every replica that loads the same version:
    one insert by a client id derived from the content, so two replicas that load it at once
    make identical items (merged as one) instead of two copies of the text."""
    epoch = hashlib.sha256(f"{session_uuid}\0{path}\0{version}\0{text}".encode()).hexdigest()[:32]
    doc: Doc[Text] = Doc(client_id=int(epoch[:8], 16) & 0x7FFFFFFF, skip_gc=True)
    if text:
        doc.get(TEXT, type=Text).insert(0, text)
    return Base(version=version, text=text, state=doc.get_update(), epoch=epoch)


def _new_doc(state: bytes) -> Doc[Text]:
    # skip_gc: deleted text stays as tombstones, so an external change merged from an older base
    # still finds the items it is positioned against.
    doc: Doc[Text] = Doc(skip_gc=True)
    doc.apply_update(state)
    return doc


def merge_external(base: Base, new_text: str, version: int) -> tuple[bytes, Base]:
    """(update, new base) that turns ``base``'s text into ``new_text`` as a minimal edit made
    on a branch from ``base``: applied to a document that has moved on since, it keeps the
    document's own edits (the CRDT merges both)."""
    fork = _new_doc(base.state)
    text = fork.get(TEXT, type=Text)
    before = fork.get_state()
    old = base.text
    with fork.transaction():
        for start, count, ins in edits(old, new_text):
            # pycrdt's Text positions are UTF-8 byte offsets.
            b_start = len(old[:start].encode())
            b_count = len(old[start : start + count].encode())
            if b_count:
                del text[b_start : b_start + b_count]
            if ins:
                text.insert(b_start, ins)
    assert str(text) == new_text
    update = fork.get_update(before)
    return update, Base(version=version, text=new_text, state=fork.get_update(), epoch=base.epoch)


class SharedDoc:
    """The document of one file on this replica."""

    def __init__(self, base: Base, *, max_update_bytes: int, max_doc_bytes: int) -> None:
        self.doc = _new_doc(base.state)
        self.text = self.doc.get(TEXT, type=Text)
        self.awareness = Awareness(self.doc)
        self.base = base
        self.epoch = base.epoch
        self.max_update_bytes = max_update_bytes
        self.max_doc_bytes = max_doc_bytes

    def content(self) -> str:
        return str(self.text)

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def missing_for(self, state_vector: bytes) -> bytes:
        """The update a peer with ``state_vector`` lacks (raises ValueError if it is malformed)."""
        return self.doc.get_update(state_vector)

    def apply(self, update: bytes) -> bool:
        """Validate and apply an update; whether the text changed. Raises ``UpdateRefused``
        with the document untouched."""
        if len(update) > self.max_update_bytes:
            raise UpdateRefused(
                "update_too_large",
                f"the update is {len(update)} bytes; the limit is {self.max_update_bytes}",
            )
        if update == EMPTY_UPDATE:
            return False
        try:
            scratch: Doc[Text] = Doc(skip_gc=True)
            scratch.apply_update(update)
        except Exception as exc:  # the library's decode errors (ValueError and others)
            raise UpdateRefused("malformed_update", f"the update does not decode: {exc}") from exc
        for name in list(scratch.keys()):
            if name != TEXT:
                raise UpdateRefused(
                    "malformed_update", f"the update changes {name!r}; only {TEXT!r} is shared"
                )
        current = len(self.text)  # bytes
        if current + len(update) > self.max_doc_bytes:
            # The update could push the text over the limit: try it on a copy first.
            trial = _new_doc(self.doc.get_update())
            try:
                trial.apply_update(update)
            except Exception as exc:
                raise UpdateRefused(
                    "malformed_update", f"the update does not apply: {exc}"
                ) from exc
            size = len(trial.get(TEXT, type=Text))
            if size > self.max_doc_bytes:
                raise UpdateRefused(
                    "document_too_large",
                    f"the document would be {size} bytes; the limit is {self.max_doc_bytes}",
                )
        before = self.doc.get_state()
        try:
            self.doc.apply_update(update)
        except Exception as exc:
            raise UpdateRefused("malformed_update", f"the update does not apply: {exc}") from exc
        return self.doc.get_state() != before or current != len(self.text)

    def would_change(self, update: bytes) -> bool:
        """Whether applying ``update`` would change the document (tried on a copy)."""
        if update == EMPTY_UPDATE:
            return False
        if len(update) > self.max_update_bytes:
            return True
        trial = _new_doc(self.doc.get_update())
        try:
            trial.apply_update(update)
        except Exception:
            return True
        return trial.get_state() != self.doc.get_state() or str(trial.get(TEXT, type=Text)) != str(
            self.text
        )

    def apply_trusted(self, update: bytes) -> None:
        """An update from another replica or from this replica's own merge (validated where it
        entered); a malformed one is dropped (the periodic state exchange repairs)."""
        if update != EMPTY_UPDATE:
            self.doc.apply_update(update)

    def snapshot(self) -> tuple[str, bytes]:
        """(text, state) at this instant: what a save stores as its base."""
        return str(self.text), self.doc.get_update()
