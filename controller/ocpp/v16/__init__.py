"""OCPP 1.6J: a thin protocol layer on the version-neutral station core (controller.ocpp.station)."""
