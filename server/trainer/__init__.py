"""The trainer process and what the web process needs to talk to it: the protocol of typed
commands and reports, the run it trains, the worker loop, and the recorder that keeps runs."""
