"""Harnesses for the runtime tests: real platform runtimes on loopback."""
