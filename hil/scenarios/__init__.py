"""The scenario suite, one module per theme: reservations, faults, restart, competition, ocpp."""
