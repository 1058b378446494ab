"""A small web shop written the way many teams write one today.

This is the "before" of the stateshift migration example: it works on one
long-running server and misbehaves on serverless compute. See README.md
for the list of hazards and ``stateshift analyze`` for finding them.
"""
