"""Prometheus as the source of agent popularity.

``client`` speaks the HTTP API, ``response`` parses its JSON (also used by
the ``forecast`` command on saved responses), ``source`` runs the background
refresh loop that publishes a ``Popularity`` for the request path, and
``metrics`` exports the forecast's health and backtest scores.
"""
