"""The hardware-in-the-loop bench: a plant that animates the charger's hardware, and scenarios that check the
controller's lines on a simulated bench (``sim``) or a real one. Entry point: ``charger-hil`` (hil.cli)."""
