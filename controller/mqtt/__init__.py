"""The MQTT front: retained state, Home Assistant discovery and commands on a broker (aiomqtt).

topics.py names every topic; state.py turns the status document into topic payloads; discovery.py makes the
Home Assistant discovery configs; commands.py parses and carries out commands; backoff.py paces reconnects
and failure logs; settings.py says what the bridge reads of ``[mqtt]``; bridge.py runs the connection. Like
the HTTP API it speaks to the controller only through the port (controller.port.charger.Charger); a broker
outage never reaches the controller.
"""
