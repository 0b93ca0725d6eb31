"""Versions of a projection, for blue/green rebuilds: names, the live pointer, the claim.

Version 1 of a projection is the processor as declared (``reporting``, views such as
``report.products``). A rebuild builds version *n* beside it under versioned names
(``reporting@v2``, ``report.products@v2``): its own checkpoints and view rows. One view row
per projection says which version is live; readers and the processor's runtimes read it,
and a rebuild switches it in one transaction::

    tillflow.live["reporting"] = {version: 2, ...}     (absent: version 1)
    tillflow.rebuilds["reporting"] = {state: running, version: 3, owner, seen_at}

A rebuild holds a *claim*, so that two cannot run at once for one projection. Every change
of the claim (taking it, its heartbeat, the switch, letting go) is a compare-and-set on the
checkpoint of ``<projection>@rebuild`` on lane 0 — a counter, not a position — so of two
rebuilds racing, one is refused, and one taken over after its heartbeat stopped is fenced
out of every later write, the switch included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

import msgspec

from tillflow.engine.errors import CheckpointConflict, CheckpointPassed, TillflowError
from tillflow.engine.store import BatchEffects, EventStore

LIVE_VIEW: Final = "tillflow.live"
CLAIMS_VIEW: Final = "tillflow.rebuilds"
CLAIM_SUFFIX: Final = "@rebuild"
STALE_AFTER: Final = 15.0
"""Seconds without a heartbeat after which a rebuild's claim may be taken over."""
_VERSIONED: Final = re.compile(r"^(?P<base>.+)@v(?P<version>[0-9]+)$")


@runtime_checkable
class Rebuildable(Protocol):
    """A handler whose processor may be rebuilt blue/green: it writes the views of the
    version that ``session.processor`` names (:func:`version_of`), and says which."""

    def version_views(self, version: int) -> list[str]:
        """The views version ``version`` writes (all of them: a rebuild compares and
        drops exactly these)."""
        ...

    def comparable(self, view: str, row: bytes) -> object:
        """What a dry run compares of a row of ``view`` (named as in version 1): the row,
        or its figures without what depends on the order lanes were handled in."""
        ...


def versioned(name: str, version: int) -> str:
    """The name of a processor or view in version ``version`` (version 1: ``name``)."""
    return name if version == 1 else f"{name}@v{version}"


def version_of(name: str) -> int:
    """The version a processor or view name is of (1 when it names none)."""
    found = _VERSIONED.match(name)
    return 1 if found is None else int(found["version"])


def base_of(name: str) -> str:
    """``name`` without its version."""
    found = _VERSIONED.match(name)
    return name if found is None else found["base"]


def is_claim(processor: str) -> bool:
    """Whether a checkpoint name is a rebuild claim's counter, not a processor."""
    return processor.endswith(CLAIM_SUFFIX)


class LiveVersion(msgspec.Struct, frozen=True):
    """The live pointer: which version readers and runtimes use, since when, and where the
    rebuild stood when it switched (per lane)."""

    version: int = 1
    previous: int = 0
    switched_at: float = 0.0
    positions: dict[int, int] = msgspec.field(default_factory=dict)


_LIVE = msgspec.json.Decoder(LiveVersion)


def live_of(store: EventStore, projection: str) -> LiveVersion:
    """The live pointer of ``projection`` (version 1 if it was never rebuilt)."""
    raw = store.read_view(LIVE_VIEW, projection)
    return LiveVersion() if raw is None else _LIVE.decode(raw)


def live_version(store: EventStore, projection: str) -> int:
    """The version of ``projection`` that is live now: one read of one row."""
    raw = store.read_view(LIVE_VIEW, projection)
    return 1 if raw is None else _LIVE.decode(raw).version


def live_name(store: EventStore, projection: str) -> str:
    """The processor name the live version of ``projection`` commits under."""
    return versioned(projection, live_version(store, projection))


ClaimState = Literal["running", "switched", "stopped", "dropped"]


class Claim(msgspec.Struct, frozen=True):
    """Who rebuilds a projection (or last did), into which version, and how it ended."""

    state: ClaimState
    version: int
    owner: str
    started_at: float
    seen_at: float
    dry_run: bool = False


_CLAIM = msgspec.json.Decoder(Claim)


class UnknownProjection(TillflowError):
    """A rebuild (or drop) named a projection that cannot be rebuilt."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"unknown projection {name!r}: the projections that can be rebuilt are "
            f"{', '.join(known) or 'none'}"
        )


class RebuildRunning(TillflowError):
    """A rebuild of the projection is running already (nothing was changed)."""

    def __init__(self, projection: str, claim: Claim | None, now: float) -> None:
        self.projection = projection
        self.claim = claim
        if claim is None:
            detail = "another rebuild took it at the same moment"
        else:
            age = max(0.0, now - claim.seen_at)
            detail = (
                f"{claim.owner} is building v{claim.version}"
                f"{' (dry run)' if claim.dry_run else ''}, last seen {age:.1f} s ago; "
                f"if it died, its claim lapses {STALE_AFTER:.0f} s after it was last seen"
            )
        super().__init__(f"a rebuild of {projection!r} is running already: {detail}")


class RebuildTakenOver(TillflowError):
    """This rebuild's claim was taken over (its heartbeat was late): it must stop, and it
    wrote nothing since."""

    def __init__(self, projection: str) -> None:
        self.projection = projection
        super().__init__(f"the rebuild of {projection!r} was taken over by another one")


def read_claim(store: EventStore, projection: str) -> Claim | None:
    raw = store.read_view(CLAIMS_VIEW, projection)
    return None if raw is None else _CLAIM.decode(raw)


@dataclass
class ClaimHandle:
    """A claim held: every write through it is fenced by the claim's counter."""

    store: EventStore
    projection: str
    claim: Claim
    counter: int

    @property
    def _lock(self) -> str:
        return self.projection + CLAIM_SUFFIX

    def write(
        self,
        views: dict[tuple[str, str], bytes | None],
        claim: Claim,
        not_past: dict[tuple[str, int], int] | None = None,
    ) -> None:
        """Write ``views`` and ``claim`` in one transaction, if the claim is still ours
        (else :class:`RebuildTakenOver`) and no checkpoint of ``not_past`` passed its bound
        (else :class:`CheckpointPassed`); nothing written on either."""
        effects = BatchEffects(
            views={**views, (CLAIMS_VIEW, self.projection): _encode(claim)},
            not_past=not_past or {},
        )
        try:
            self.store.commit_batch(self._lock, 0, self.counter, self.counter + 1, effects)
        except CheckpointPassed:
            raise
        except CheckpointConflict as error:
            raise RebuildTakenOver(self.projection) from error
        self.counter += 1
        self.claim = claim

    def heartbeat(self, now: float) -> None:
        self.write({}, msgspec.structs.replace(self.claim, seen_at=now))

    def switch(self, live: LiveVersion, now: float) -> None:
        """Make ``live`` the projection's live pointer and end the claim, in one
        transaction, if the version it replaces stands at most where ``live`` does
        (``live.positions``) on every lane: from its commit on, readers read the new
        version, never behind what they read before. Else :class:`CheckpointPassed`,
        nothing written: compare again."""
        ended = msgspec.structs.replace(self.claim, state="switched", seen_at=now)
        old = versioned(self.projection, live.previous)
        bounds = {(old, lane): position for lane, position in live.positions.items()}
        self.write({(LIVE_VIEW, self.projection): _encode(live)}, ended, bounds)

    def release(self, state: ClaimState, now: float) -> None:
        self.write({}, msgspec.structs.replace(self.claim, state=state, seen_at=now))


def take_claim(
    store: EventStore,
    projection: str,
    owner: str,
    now: float,
    dry_run: bool = False,
    version: int | None = None,
) -> ClaimHandle:
    """Claim the right to rebuild ``projection`` into ``version`` (default: its next version
    number, one more than the live version and than any version a rebuild took before, so
    a number is never used twice). Raises :class:`RebuildRunning` (nothing written) while
    another rebuild holds a fresh claim."""
    lock = projection + CLAIM_SUFFIX
    counter = store.checkpoint(lock, 0)
    current = read_claim(store, projection)
    if current is not None and current.state == "running" and now - current.seen_at < STALE_AFTER:
        raise RebuildRunning(projection, current, now)
    if version is None:
        last = 0 if current is None else current.version
        version = max(live_version(store, projection), last) + 1
    claim = Claim("running", version, owner, now, now, dry_run)
    effects = BatchEffects(views={(CLAIMS_VIEW, projection): _encode(claim)})
    try:
        store.commit_batch(lock, 0, counter, counter + 1, effects)
    except CheckpointConflict as error:
        raise RebuildRunning(projection, read_claim(store, projection), now) from error
    return ClaimHandle(store, projection, claim, counter + 1)


def _encode(value: msgspec.Struct) -> bytes:
    return msgspec.json.encode(value)
