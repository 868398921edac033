"""The YAML file as a source of revisions: imported when its content changed since its last
import (at start, `tidings config reload`, SIGHUP), as ``server.config_source`` says:

- ``both`` (default): the file's changes since its last import are merged into the current
  revision (``document.merge_file_change``): what was made through the API and the file did not
  touch stays;
- ``file``: the file's document becomes the revision as it is (the API is read-only);
- ``database``: the file seeds the first revision only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..audit import SYSTEM, Actor
from ..store.engine import Conn, Store
from ..store.tables import config_revisions, config_state
from .document import Document, digest, document_of, merge_file_change, to_config
from .models import Config
from .revisions import Revision, State, commit, current, lock_state, read_state, record_file


@dataclass(frozen=True)
class Plan:
    """What importing a file would do, read without changing anything."""

    head: Revision | None
    """The current revision (None before the first)."""
    proposed: Document | None
    """The document the import would commit; None: the file changed nothing since its last import
    (or ``config_source: database`` and a revision exists)."""


def next_document(mode: str, head: Revision | None, state: State | None, file_doc: Document) -> Document | None:
    """The document importing ``file_doc`` makes in ``mode`` (None: it makes none)."""
    if head is not None and (mode == "database" or (state is not None and state.file_digest == digest(file_doc))):
        return None
    if head is None or mode == "file":
        return file_doc
    return merge_file_change(head.document, state.file_document if state is not None else None, file_doc)


async def plan_import(store: Store, config: Config) -> Plan:
    """What :func:`import_file` would make of ``config``, read in one snapshot, nothing stored (a
    process that does not import runs it, as its file says; a starting hub checks it first)."""
    async with store.read() as conn:
        head = await current(conn)
        state = await read_state(conn)
    return Plan(head, next_document(config.server.config_source, head, state, document_of(config)))


async def import_file(store: Store, config: Config, *, actor: Actor = SYSTEM) -> tuple[Revision, bool]:
    """Import ``config`` (as read from its file) if the file changed; (the current revision,
    whether the import made it). :class:`~tidings.errors.ConfigError` when the result would be
    invalid: then nothing changes."""
    file_doc = document_of(config)
    async with store.write() as conn:
        state = await lock_state(conn)
        head = await current(conn)
        document = next_document(config.server.config_source, head, state, file_doc)
        if document is None:
            assert head is not None
            return head, False
        revision, made = await commit(
            conn, document, actor=actor, source="file", comment="imported from the configuration file",
            validate=lambda doc: to_config(doc, config),
        )
        await record_file(conn, file_doc)
    return revision, made


@dataclass(frozen=True)
class FileStatus:
    """Where ``config``'s file stands against the database (``tidings config validate``)."""

    current: int
    """The current revision (0: none yet)."""
    imported: int | None
    """The newest revision a file import made (None: none)."""
    changed: bool
    """The file's document differs from its last import: the next import (reload, start, SIGHUP)
    would take it, unless ``server.config_source`` is ``database``."""


async def file_status(conn: Conn, config: Config) -> FileStatus:
    """Read-only: nothing is locked or created."""
    row = (await conn.execute(select(config_state.c.current, config_state.c.file_digest)
                              .where(config_state.c.id == 1))).first()
    imported = (await conn.execute(select(func.max(config_revisions.c.number))
                                   .where(config_revisions.c.source == "file"))).scalar()
    if row is None:
        return FileStatus(0, imported, True)
    return FileStatus(int(row.current), imported, row.file_digest != digest(document_of(config)))
