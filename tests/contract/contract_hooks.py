"""Hooks for the suite's schemathesis run (tests/it/contract.rs loads them with `hooks` in
schemathesis.toml and PYTHONPATH).

A valid handshake on a websocket route is answered 101 Switching Protocols, and the connection is
then the websocket's. A websocket client keeps it; schemathesis speaks only HTTP, and its
connection pool would send the next HTTP request down that socket (the OSN reads it as a bad
frame and closes). So the connection of a 101 is closed here before it can go back to the pool,
as a client that only wanted the handshake would do.
"""

from requests.adapters import HTTPAdapter

_send = HTTPAdapter.send


def _send_closing_upgrades(self, request, **kwargs):
    response = _send(self, request, **kwargs)
    if response.status_code == 101:
        connection = getattr(response.raw, "_connection", None) or getattr(response.raw, "connection", None)
        if connection is not None:
            connection.close()
    return response


HTTPAdapter.send = _send_closing_upgrades
