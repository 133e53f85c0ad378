"""``studentflow explore``: move a lever in a meeting, see the answer in a second.

The model is fitted and calibrated once (:func:`start_session`); a local web page
(:func:`make_app`, Dash) then answers every lever setting with the same computation as
``studentflow run``: the point estimate first, the 95 % intervals right after.

- :mod:`.levers`: the page's levers, checked, as a :class:`~studentflow.scenarios.Scenario`
  and as a scenario TOML file.
- :mod:`.session`: what is computed once, and :meth:`ExploreSession.answer`.
- :mod:`.page`: the Dash layout and callbacks.

From Python::

    from studentflow.explore import start_session, serve
    session = start_session(draws=20)
    print(session.answer(session.levers({"subsidy": {"NCR": 5000}})).summary())
    serve(session, port=8050)            # http://127.0.0.1:8050, Ctrl-C stops it
"""

from __future__ import annotations

from studentflow.explore.levers import LeverError, Levers, levers_from_scenarios, parse_levers, scenario_toml
from studentflow.explore.session import Answer, ExploreSession, start_session

__all__ = ["Answer", "ExploreSession", "LeverError", "Levers", "levers_from_scenarios", "make_app", "make_server",
           "parse_levers", "scenario_toml", "serve", "start_session"]


def make_app(session: ExploreSession):
    """The Dash app of ``session`` (see :mod:`.page`)."""
    from studentflow.explore.page import make_app as _make

    return _make(session)


def make_server(session: ExploreSession, *, host: str = "127.0.0.1", port: int = 8050):
    """A threaded WSGI server for the page (``serve_forever()`` / ``shutdown()``).

    Binds to ``host`` (default 127.0.0.1: this machine only). ``port=0`` takes a free
    port; the server's ``port`` attribute tells which.
    """
    import logging

    from werkzeug.serving import make_server as _make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the console
    return _make_server(host, port, make_app(session).server, threaded=True)


def serve(session: ExploreSession, *, host: str = "127.0.0.1", port: int = 8050, log=print) -> None:
    """Serve the page until Ctrl-C."""
    server = make_server(session, host=host, port=port)
    log(f"studentflow explore: open http://{host}:{server.port}/ (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
