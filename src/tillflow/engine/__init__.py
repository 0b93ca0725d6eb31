"""The tillflow engine: generic, it knows nothing about shops.

::

    commands ──append──► EventStore (lanes: dense positions in commit order)
                              │
                  Runtime ────┼── LaneProcessor(inventory) ──commit(effects + checkpoint)──►
                              │          ▲ barrier = min(head, upstream checkpoints)
                              └── LaneProcessor(reporting, after=["inventory"]) ──commit──►

Backends: :mod:`tillflow.engine.memory`, :mod:`tillflow.engine.sqlite`.
"""

from tillflow.engine.errors import (
    CheckpointConflict,
    ConcurrencyConflict,
    DependencyCycle,
    DrainTimeout,
    DuplicateProcessor,
    EventIdReused,
    HandlerFailed,
    InvalidEvent,
    NotATillflowDatabase,
    ProcessorStopped,
    SchemaTooNew,
    StoreClosed,
    TillflowError,
    UnknownEventType,
    UnknownProcessor,
)
from tillflow.engine.failure import FailurePolicy, RetryWithBackoff, StopOnFailure
from tillflow.engine.faults import FaultyStore, SimulatedCommitFailure, SimulatedCrash
from tillflow.engine.graph import validate_graph
from tillflow.engine.ids import derived_event_id, format_id, id_from_key, new_event_id, parse_id
from tillflow.engine.lane_processor import LaneProcessor, State, StepResult
from tillflow.engine.memory import MemoryEventStore
from tillflow.engine.processor import Handler, Processor, Session, processor
from tillflow.engine.runtime import PollBackoff, Runtime, WaitOutcome
from tillflow.engine.simulation import (
    Action,
    Command,
    CommandInBatch,
    Crash,
    CrashInBatch,
    FailCommit,
    Scenario,
    SimulationResult,
    Step,
    Violation,
    Weights,
    explore,
    shrink,
    simulate,
)
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

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "Action",
    "AppendRequest",
    "BatchEffects",
    "CheckpointConflict",
    "Command",
    "CommandInBatch",
    "ConcurrencyConflict",
    "Crash",
    "CrashInBatch",
    "DependencyCycle",
    "DrainTimeout",
    "DuplicateProcessor",
    "Durability",
    "Emitted",
    "EventIdReused",
    "EventRegistry",
    "EventStore",
    "FailCommit",
    "FailurePolicy",
    "FaultyStore",
    "Handler",
    "HandlerFailed",
    "InvalidEvent",
    "LaneProcessor",
    "MemoryEventStore",
    "NewEvent",
    "NotATillflowDatabase",
    "PollBackoff",
    "Processor",
    "ProcessorStatistics",
    "ProcessorStopped",
    "Receipt",
    "RecordedEvent",
    "RetryWithBackoff",
    "Runtime",
    "Scenario",
    "SchemaTooNew",
    "Session",
    "SimulatedCommitFailure",
    "SimulatedCrash",
    "SimulationResult",
    "SqliteEventStore",
    "State",
    "Step",
    "StepResult",
    "StopOnFailure",
    "StoreClosed",
    "TillflowError",
    "UnknownEventType",
    "UnknownProcessor",
    "Violation",
    "WaitOutcome",
    "Weights",
    "derived_event_id",
    "explore",
    "format_id",
    "id_from_key",
    "new_event_id",
    "parse_id",
    "processor",
    "shrink",
    "simulate",
    "validate_graph",
]
