"""Provides everything that runs services; never imports the console or the printer."""

from tuisup.engine.host import Host as Host
from tuisup.engine.host import Subscription as Subscription
from tuisup.model import ServiceState as ServiceState
from tuisup.model import ServiceView as ServiceView
from tuisup.model import UnknownService as UnknownService
