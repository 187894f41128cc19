"""The port every front uses: the ``Charger`` protocol (charger.py) and the event hub (events.py).

The runtime implements the port; the HTTP API and CLI, the MQTT bridge (and the OCPP front to come) speak
only through it. May import controller.core; never the runtime, the charging model or a front.
"""
