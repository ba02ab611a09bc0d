"""flowrt: an asyncio-native workflow runtime with correct failure semantics.

Build a ``Workflow`` of nodes wrapping your async or sync functions, then ``await wf.run(input)``.
"""

from ._catalog import resume_due as resume_due
from ._catalog import send_signal as send_signal
from ._conditions import Condition as Condition
from ._control import cancel_run as cancel_run
from ._engine.context import RunContext as RunContext
from ._engine.context import current as current
from ._engine.events import configure_logging as configure_logging
from ._engine.kinds import Final as Final
from ._errors import DefinitionError as DefinitionError
from ._errors import FlowError as FlowError
from ._errors import InputError as InputError
from ._errors import LeaseLost as LeaseLost
from ._errors import LimitReached as LimitReached
from ._errors import MaxLoopsExceeded as MaxLoopsExceeded
from ._errors import NoMatch as NoMatch
from ._errors import OutputError as OutputError
from ._errors import RateLimited as RateLimited
from ._errors import RunCancelled as RunCancelled
from ._errors import RunEnded as RunEnded
from ._errors import RunInProgress as RunInProgress
from ._errors import RunNotFound as RunNotFound
from ._errors import SignalConflict as SignalConflict
from ._errors import SignalTimeout as SignalTimeout
from ._errors import StoreTooNew as StoreTooNew
from ._errors import StrayCancellation as StrayCancellation
from ._errors import Superseded as Superseded
from ._errors import TooManyFailures as TooManyFailures
from ._errors import TooManyRecoveries as TooManyRecoveries
from ._errors import WorkerCrashed as WorkerCrashed
from ._errors import WorkflowFailed as WorkflowFailed
from ._executors import Executor as Executor
from ._limits import RateLimit as RateLimit
from ._limits import RunLimit as RunLimit
from ._models import AttemptRecord as AttemptRecord
from ._models import ErrorHandling as ErrorHandling
from ._models import ErrorInfo as ErrorInfo
from ._models import Event as Event
from ._models import NodeResult as NodeResult
from ._models import RunResult as RunResult
from ._models import SignalSent as SignalSent
from ._models import WorkflowRetry as WorkflowRetry
from ._nodes import Branch as Branch
from ._nodes import Choice as Choice
from ._nodes import Node as Node
from ._store.protocol import RunStore as RunStore
from ._store.sqlite import SQLiteStore as SQLiteStore
from ._worker import Worker as Worker
from ._workflow import Workflow as Workflow

__version__ = "0.1.0"

__all__ = [
    "AttemptRecord",
    "Branch",
    "Choice",
    "Condition",
    "DefinitionError",
    "ErrorHandling",
    "ErrorInfo",
    "Event",
    "Executor",
    "Final",
    "FlowError",
    "InputError",
    "LeaseLost",
    "LimitReached",
    "MaxLoopsExceeded",
    "NoMatch",
    "Node",
    "NodeResult",
    "OutputError",
    "RateLimit",
    "RateLimited",
    "RunCancelled",
    "RunContext",
    "RunEnded",
    "RunInProgress",
    "RunLimit",
    "RunNotFound",
    "RunResult",
    "RunStore",
    "SQLiteStore",
    "SignalConflict",
    "SignalSent",
    "SignalTimeout",
    "StoreTooNew",
    "StrayCancellation",
    "Superseded",
    "TooManyFailures",
    "TooManyRecoveries",
    "Worker",
    "WorkerCrashed",
    "Workflow",
    "WorkflowFailed",
    "WorkflowRetry",
    "__version__",
    "cancel_run",
    "configure_logging",
    "current",
    "resume_due",
    "send_signal",
]
