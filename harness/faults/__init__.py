"""Faults between agents and replicas: a TCP proxy / load balancer that understands just enough HTTP/1.1
and SSE to cut a stream at a named moment (``proxy.FaultProxy``), on top of a pure incremental parser
(``httpstream``). Every operation it performs goes into the run's event log.
"""
