"""The complaints engine: definitions, instances, tasks, timers, calendar, sandbox.

Nothing in this package imports Flask.
"""
