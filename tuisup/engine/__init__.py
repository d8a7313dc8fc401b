"""Provides everything that runs services; never imports the console or the printer."""

from tuisup.engine.events import Event as Event
from tuisup.engine.events import ServiceState as ServiceState
from tuisup.engine.host import Host as Host
from tuisup.engine.host import Subscription as Subscription
from tuisup.engine.host import UnknownService as UnknownService
from tuisup.engine.status import ExitRecord as ExitRecord
from tuisup.engine.status import ServiceStatus as ServiceStatus
