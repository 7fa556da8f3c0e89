"""Every route of the service, in one place."""

from fastapi import FastAPI

from pleno.api import chain, chaos, health, info, items, metrics, work

# Rarely requested: the OpenAPI document and the admin readiness switches.
_RARELY_USED = frozenset({"/openapi.json", "/ready/disable", "/ready/enable"})


def install_routes(app: FastAPI) -> None:
    """Add every route to the app's own flat route list.

    FastAPI 0.16x keeps each included router as a nested node and matches through it on every
    request; adding the routes themselves halves the routing cost (see docs/benchmarks.md).
    Matching is then a linear scan costing about a microsecond per route passed over, so the
    rarely used routes go last (none of their paths overlaps another route's pattern). Fault
    injection is a dependency of the API modules' routers, so it is part of their routes already.
    """
    modules = [health, metrics, info, chaos, items, work, chain]
    if not app.state.settings.chaos_endpoints_enabled:
        modules.remove(chaos)
    for module in modules:
        app.router.routes.extend(module.router.routes)
    rare = [route for route in app.router.routes if getattr(route, "path", None) in _RARELY_USED]
    for route in rare:
        app.router.routes.remove(route)
    app.router.routes.extend(rare)
