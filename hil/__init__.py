"""The hardware-in-the-loop bench: a plant that animates the charger's hardware, and scenarios that check the
controller's lines on a simulated bench (``sim``) or a real one. Entry point: ``charger-hil`` (hil.cli).

What lives where, from the bottom up (each imports only what is below it; nothing in ``controller``
or ``drivers`` imports ``hil``):

- bench profiles: ``profile`` (what a profile holds), ``profile_loader`` (reading ``benches/*.toml``) with
  ``profile_reader`` (the strict TOML walker) and ``pilot_profile`` (control pilots: ``[dut] pilots``,
  ``[evses.pilot]``);
- recording: ``timeline`` (lines, markers, checks over time), ``timewarp`` (a loop clock that skips
  idle waits), ``dut_api`` (the DUT's HTTP API as the harness uses it);
- benches: ``bench`` (the ``BenchDriver`` interface and ``PlantFault``), ``sim_bench`` with ``sim_pilot`` (the
  DUT in this process, its simulated car on each control pilot), ``real_bench`` with ``plant``, ``harness_pins``,
  ``harness_car`` and ``meter_link`` (a harness Pi wired to a DUT Pi, playing the car on CP); ``cp_car`` (the car
  both benches play, and the CP state it presents);
- the DUT's CSMS: ``csms`` with ``csms_answers`` (the harness's OCPP 2.0.1 or 1.6J central system, for the
  profile's ``[ocpp]``, in the DUT's version);
- scenarios: ``checks`` (how a check is judged and recorded), ``line_views`` with ``pilot_views`` on ``recorded_line``
  (the checks on an EVSE's lines: logic lines, the PWM duty, the CP state, the car's current), ``harness`` (``Bench``, a
  scenario's handle) with ``meter_reads`` (when the DUT read the plant's meter), ``ocpp_view`` with ``ocpp_dialect`` and
  ``ocpp_energy`` (the CSMS, per OCPP version, and the plant's meter as OCPP scenarios check them),
  ``scenario`` and ``scenarios/`` (the suite);
- running and reporting: ``runner``, ``report`` with ``plot``, ``cli``;
- simulated-charger instruments: ``interlocks/`` (a monitor of every coil and lock-motor edge) and
  ``storm/`` (fault storms, ``python -m hil.storm``), which use the controller directly, not a bench.
"""
