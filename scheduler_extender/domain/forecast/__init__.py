"""Per-agent request-rate forecasting: cheap models in numpy, backtested every refresh.

``forecaster.forecast`` is the entry point: a ``SeriesBatch`` in, one
``AgentForecast`` per agent out (point forecast and upper quantile per
horizon step, the model chosen, and its backtest scores).
"""
