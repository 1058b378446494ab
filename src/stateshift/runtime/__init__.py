"""Serverless runtime: invocations with a deadline, the HTTP API, the dev server.

Every platform adapter (:mod:`stateshift.aws`, :mod:`stateshift.gcp`,
:mod:`stateshift.azure`) turns what its platform hands over into one
:mod:`~stateshift.runtime.triggers` value and a
:class:`~stateshift.runtime.deadline.Deadline`, and gives both to one
:class:`~stateshift.runtime.invocation.Invoker`. Nothing here keeps state
between invocations: the store holds it all.
"""

from __future__ import annotations
