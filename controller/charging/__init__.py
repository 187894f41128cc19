"""The charging point's model: EVSE state from its readings, the charging session, the output policy.

Pure functions and small state machines, the interlocks' rules among them. May import controller.core and
the drivers' report types (drivers.interfaces, plain values); no asyncio, no I/O, no front.
"""
