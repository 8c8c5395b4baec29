"""Neutralize: the inline Modbus/TCP firewall (policy, proxy, command line)."""

from interlock.respond.policy import (
    MONITOR_POLICY,
    Policy,
    PolicyError,
    RateLimiter,
    Request,
    Rule,
    Verdict,
    decide,
    load_policy,
    parse_policy,
    request_of,
)

__all__ = [
    "MONITOR_POLICY",
    "Policy",
    "PolicyError",
    "RateLimiter",
    "Request",
    "Rule",
    "Verdict",
    "decide",
    "load_policy",
    "parse_policy",
    "request_of",
]
