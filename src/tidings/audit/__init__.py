"""The tamper-evident audit trail.

Every change of state appends one entry in the caller's transaction (:func:`append`). Entries form a
hash chain: ``hash = SHA-256("tidings-audit-v1" || prev_hash || RFC 8785 JSON of the entry)``.
Signed checkpoints (:mod:`.checkpoints`, an Ed25519 key kept outside the database) pin the chain's
head, so rewriting the whole chain, or cutting its tail, is caught by :func:`verify`.
"""

from .chain import GENESIS, SYSTEM, Actor, Entry, append, append_many, entry_hash
from .checkpoints import Checkpoint, Signer, load_signer, make_checkpoint
from .verify import Problem, Verified, verify_entries, verify_store

__all__ = [
    "GENESIS",
    "SYSTEM",
    "Actor",
    "Checkpoint",
    "Entry",
    "Problem",
    "Signer",
    "Verified",
    "append",
    "append_many",
    "entry_hash",
    "load_signer",
    "make_checkpoint",
    "verify_entries",
    "verify_store",
]
