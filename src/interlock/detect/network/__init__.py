"""Network detectors: rules over the records decoded from the wire."""

from interlock.detect.network.rules import Rule, RuleEngine, RuleError, load_rule, load_rules, parse_rule

__all__ = ["Rule", "RuleEngine", "RuleError", "load_rule", "load_rules", "parse_rule"]
