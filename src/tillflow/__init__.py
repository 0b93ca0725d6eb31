"""tillflow: a point-of-sale backend whose reports stay true while its handlers run
asynchronously, and the event engine behind it.

Layers (each imports only the ones below it)::

    http/  cli/        the two entry points: the HTTP API and dashboard, the tillflow command
    service/  demos/   what a running service needs (settings, tokens, the composition root);
                       the runnable demos and the shop's simulation scenarios
    shop/              the domain: sale/, inventory/, reporting/ and their assembly
    engine/            generic event engine: stores, processors, barriers, runtime
    testing            fault injection and the simulator, for tests of your own processors
"""

__version__ = "0.1.0"
