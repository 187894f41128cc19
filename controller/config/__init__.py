"""The configuration: schema (pydantic), model, building the drivers' settings, loading, ``check-config``.

Holds ``sim_default.toml``, the simulated charger of ``run --sim``. May import controller.core,
controller.addresses and the drivers' configuration types; no front and no runtime.
"""
