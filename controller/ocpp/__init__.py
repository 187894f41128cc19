"""The OCPP front: the charging station that talks to a CSMS over OCPP-J (2.0.1 and 1.6J)."""
