"""The ``stateshift`` command line."""
