"""The OCPP 2.0.1 protocol layer on the version-neutral station core."""
