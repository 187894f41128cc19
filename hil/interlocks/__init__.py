"""A watchdog for DESIGN.md's safety interlocks on a running simulated charger.

``InterlockMonitor(built)`` hooks the output pins the simulated mechanisms observe (each contactor
coil and both H-bridge lines of each lock: drivers/sim/pins.py ObservedPin) by chaining onto their
``listener``. The hook runs synchronously inside the pin change, before the mechanism reacts, so a
violation is recorded at the instant the controller drives the line, not at the next poll:

* ``coil-closed``: the coil is energized only while the EVSE's session is authorized (LOCKING or
  CHARGING with a token), the plug is in (plant), the lock is physically locked, no unlock command is
  outstanding and the motor is not driving towards UNLOCK, no fault is active (runtime EvseState and
  the faults the drivers have latched) and the EVSE is enabled;
* ``unlock-under-load``: the lock motor never starts towards UNLOCK while the coil is energized, the
  main contacts are closed (physical) or the simulated meter's current exceeds the configured
  ``current_threshold_a``;
* ``lock-shoot-through``: both H-bridge lines are never on together.

The coil's interlock also asks for a limit in effect of at least 6 A and charging allowed (tags ``limit-zero``,
``paused``), and, where the EVSE has a control pilot (IEC 61851-1), the car in state C (D only with ventilation;
tag ``pilot-not-c``), no CP fault (E, or F from a car's diode short: ``pilot-fault``) and the PWM offering a current
(``pwm-off``). The car's state is the plant's, so a change the controller cannot have sampled yet is excused: the
coil may stay energized for IEC's 100 ms (the sampler's debounce must fit in it) plus ``observe_grace_s`` after the
car left C/D or the CP faulted; ``pilot-open-late`` reports a coil that opened later than that, at its opening edge.

``check_now()`` adds the state-level checks at a poll point (call it with the loop settled; it does not
repeat what was already reported for the same closing of the coil or the same motor pulse):
``coil-held`` (an energized coil still has its interlock, as above), a running unlock motor still has
its interlock, and ``weld-not-faulted``: a welded contactor keeps the EVSE Faulted (a weld the
contactor driver latched must show in the EVSE state, and contacts that stay closed with the coil off
for longer than the supervision timeout must have been noticed).

What the controller cannot know yet is not held against it. A jammed lock is invisible until a lock
command fails, so instead of the jam the monitor asks that no unlock command is outstanding when the
coil closes (what a jam leaves behind). A plug pulled an instant ago is excused while the controller's
debounced plug reading still says plugged and the pull is younger than the plug's debounce plus
``observe_grace_s``; main contacts that close by themselves (a weld with the coil off) after the runtime
decided an unlock are excused for that unlock's first pulse, which its task starts a loop iteration
after the decision, on what the controller knew then (a retry is not excused). To know when the plant
changed and when the runtime decided, the monitor also wraps, on the instances only, the contactor's
and the plug's setters, the runtime's lock driver's ``move_lock`` and, with a pilot, the simulated car's moves
and faults and the pilot output's duty setter.

Each ``Violation`` carries ``tags`` naming its causes (``"unplugged"``, ``"contacts-closed"``,
``"meter-current"``, ``"reading-before-open"``, ``"unlock-command-outstanding"``, ``"retry"``,
``"retry-after-close"``, ...), so a test can tolerate exactly the signature of a known defect and nothing else.

The monitor reads the runtime's private per-EVSE records (``runtime._evses``) and the sim mechanisms'
private pins on purpose: it is a test instrument and must see what the runtime holds at the moment
of the change, not a published copy. All hooks run in the thread that changes the pin or plant (the
loop thread for everything the controller drives).

Modules: ``records`` (``Violation`` and the monitor's notes per EVSE), ``hooks`` (the pin listener
and method spy it installs), ``readings`` (what the rules read from the plant and the drivers),
``pilot`` (the control-pilot and limit conditions), ``rules`` (the checks), ``monitor``
(``InterlockMonitor``: when the rules run), ``reserved_led`` (``reserved_led_matches_core``, the reserved LEDs
against the core) and ``pilot_offer`` (``pilot_offer_mismatches``, each pilot's duty against its session and
limits).
"""

from hil.interlocks.monitor import InterlockMonitor
from hil.interlocks.pilot_offer import pilot_offer_mismatches
from hil.interlocks.records import Violation
from hil.interlocks.reserved_led import reserved_led_matches_core
from hil.interlocks.rules import OBSERVE_GRACE_S

__all__ = ["OBSERVE_GRACE_S", "InterlockMonitor", "Violation", "pilot_offer_mismatches", "reserved_led_matches_core"]
