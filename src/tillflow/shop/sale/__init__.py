"""Sale: the catalog (``catalog`` stream: products, names, prices) and the tills.

A checkout is recorded as ``CheckedOut`` on its own stream ``checkout-<id>``; the checkout id
is its idempotency key. Returns are recorded on the checkout's stream, guarded by its version
so that no more is returned than was bought. Sale never looks at stock: a sale at the
counter has happened once it is paid.
"""
