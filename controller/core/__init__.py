"""The reservation core: EVerest Auth's types and semantics, the feasibility decision, the SQLite store.

Pure except the store (SQLite, the only I/O): no asyncio, no driver, no front, no configuration. It may
import only itself and the standard library; everything else in controller/ builds on it.
"""
