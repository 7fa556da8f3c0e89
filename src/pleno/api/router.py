"""Every route of the service, in one place."""

from fastapi import FastAPI

from pleno.api import chain, chaos, health, info, items, metrics, work


def install_routes(app: FastAPI) -> None:
    """Add every route to the app's own flat route list.

    FastAPI 0.16x keeps each included router as a nested node and matches through it on every
    request; adding the routes themselves halves the routing cost (see docs/benchmarks.md).
    Probes come first: they are the most frequent and must stay cheap. Fault injection is a
    dependency of the API modules' routers, so it is part of their routes already.
    """
    for module in (health, metrics, info, chaos, items, work, chain):
        app.router.routes.extend(module.router.routes)
