"""Runnable demonstrations, built on the shop and the engine (nothing imports them back).

::

    shop.py        tillflow demo: tills, deliveries and returns on a live shop, then verified
    engine.py      tillflow engine-demo: the engine alone, three processors chained
    simulation.py  tillflow simulate: the shop's designs under the deterministic simulator
"""
