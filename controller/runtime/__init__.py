"""The one asyncio runtime and its composition root.

``runtime.py`` (the ``Runtime``: lifecycle, and the port's methods) over collaborators with one job each:
evaluation (read an EVSE, run the model, feed the core), outputs (drive contactor, LEDs and lock under the
interlocks), interlock (what the unlock interlock may trust), timers (expiry, store retry, deadlines), tokens,
status, sim. ``build.py`` turns a configuration into drivers, store, core and runtime; ``state_lock.py`` keeps
one controller per state directory. May import core, charging, port, config and drivers; never a front.
"""
