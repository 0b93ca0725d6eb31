"""tillflow: a point-of-sale backend whose reports stay true while its handlers run
asynchronously, and the event engine behind it.

Topology (dependencies point inward)::

    cli ──► bootstrap ──► engine (generic: store, processors, barriers, runtime)
"""

__version__ = "0.1.0"
