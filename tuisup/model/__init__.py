"""Provides the plain data that front ends see: states, views, events, logs, errors.

Nothing here imports the engine, anyio or Textual: the control client and `tuisup ps` load
this alone, and every value has a JSON form that travels over the control socket as is.
"""

from tuisup.model.errors import ApiError as ApiError
from tuisup.model.errors import BadRequest as BadRequest
from tuisup.model.errors import CannotScale as CannotScale
from tuisup.model.errors import HostStopping as HostStopping
from tuisup.model.errors import UnknownService as UnknownService
from tuisup.model.events import Event as Event
from tuisup.model.events import event_from_json as event_from_json
from tuisup.model.logs import LogBatch as LogBatch
from tuisup.model.processes import Proc as Proc
from tuisup.model.processes import ProcessStats as ProcessStats
from tuisup.model.states import ACTIVE as ACTIVE
from tuisup.model.states import ExitRecord as ExitRecord
from tuisup.model.states import ExitStatus as ExitStatus
from tuisup.model.states import Health as Health
from tuisup.model.states import ServiceState as ServiceState
from tuisup.model.views import ServiceView as ServiceView
from tuisup.model.views import SpecView as SpecView
from tuisup.model.views import TableView as TableView
