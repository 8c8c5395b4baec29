"""Neutralize: the inline Modbus/TCP and DNP3 firewalls (policy, proxies, command line), policies
learned from traffic, and response playbooks (``interlock respond``). See docs/firewall.md."""

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
