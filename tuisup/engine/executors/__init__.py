"""Provides the executors: how a service runs (an OS process, for now)."""

from tuisup.engine.executors.base import Executor as Executor
from tuisup.engine.executors.base import Run as Run
from tuisup.engine.executors.base import StartError as StartError
from tuisup.engine.executors.process import ProcessExecutor as ProcessExecutor
