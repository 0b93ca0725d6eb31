"""The tillflow engine: generic, it knows nothing about shops.

::

    commands ──append──► EventStore (lanes: dense positions in commit order)
                              │
                  Runtime ────┼── LaneProcessor(inventory) ──commit(effects + checkpoint)──►
                              │          ▲ barrier = min(head, upstream checkpoints)
                              └── LaneProcessor(reporting, after=["inventory"]) ──commit──►

Backends: :mod:`tillflow.engine.memory`, :mod:`tillflow.engine.sqlite`. Fault injection and
the deterministic simulator are imported from :mod:`tillflow.testing`.
"""

from tillflow.engine.errors import (
    CheckpointConflict,
    CheckpointPassed,
    ConcurrencyConflict,
    DeadLetterBusy,
    DeadLetterResolved,
    DependencyCycle,
    DrainTimeout,
    DuplicateProcessor,
    EventIdReused,
    HandlerFailed,
    InvalidEvent,
    NotATillflowDatabase,
    NoUpcastPath,
    ProcessorStopped,
    SchemaTooNew,
    StoreClosed,
    StoreUnavailable,
    TillflowError,
    UnknownDeadLetter,
    UnknownEventType,
    UnknownProcessor,
    UpcasterConflict,
    UpcasterGap,
)
from tillflow.engine.failure import FailurePolicy, Parking, RetryWithBackoff, StopOnFailure
from tillflow.engine.graph import validate_graph
from tillflow.engine.ids import derived_event_id, format_id, id_from_key, new_event_id, parse_id
from tillflow.engine.keyed import recorded_command, with_key
from tillflow.engine.lane_processor import LaneProcessor, State, StepResult
from tillflow.engine.memory import MemoryEventStore
from tillflow.engine.processor import Handler, Processor, Session, processor
from tillflow.engine.runtime import PollBackoff, Runtime, WaitOutcome
from tillflow.engine.sqlite import SqliteEventStore
from tillflow.engine.statistics import ProcessorStatistics
from tillflow.engine.store import (
    AppendRequest,
    BatchEffects,
    Durability,
    Emitted,
    EventRegistry,
    EventStore,
)
from tillflow.engine.types import ANY_VERSION, NO_STREAM, NewEvent, Receipt, RecordedEvent
from tillflow.engine.upcasting import Upcaster, Upcasters

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "AppendRequest",
    "BatchEffects",
    "CheckpointConflict",
    "CheckpointPassed",
    "ConcurrencyConflict",
    "DeadLetterBusy",
    "DeadLetterResolved",
    "DependencyCycle",
    "DrainTimeout",
    "DuplicateProcessor",
    "Durability",
    "Emitted",
    "EventIdReused",
    "EventRegistry",
    "EventStore",
    "FailurePolicy",
    "Handler",
    "HandlerFailed",
    "InvalidEvent",
    "LaneProcessor",
    "MemoryEventStore",
    "NewEvent",
    "NoUpcastPath",
    "NotATillflowDatabase",
    "Parking",
    "PollBackoff",
    "Processor",
    "ProcessorStatistics",
    "ProcessorStopped",
    "Receipt",
    "RecordedEvent",
    "RetryWithBackoff",
    "Runtime",
    "SchemaTooNew",
    "Session",
    "SqliteEventStore",
    "State",
    "StepResult",
    "StopOnFailure",
    "StoreClosed",
    "StoreUnavailable",
    "TillflowError",
    "UnknownDeadLetter",
    "UnknownEventType",
    "UnknownProcessor",
    "Upcaster",
    "UpcasterConflict",
    "UpcasterGap",
    "Upcasters",
    "WaitOutcome",
    "derived_event_id",
    "format_id",
    "id_from_key",
    "new_event_id",
    "parse_id",
    "processor",
    "recorded_command",
    "validate_graph",
    "with_key",
]
