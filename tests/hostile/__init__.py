"""The hostile corpus: studies generated at test time that try to break emostats (issue 12)."""
