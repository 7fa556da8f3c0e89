"""`pleno serve | migrate | version`, also as `python -m pleno`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from pleno import __version__
from pleno.settings import Settings, SettingsError, load_settings

EXIT_BAD_SETTINGS = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {key: value for key in ("host", "port") if (value := getattr(args, key, None))}
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        print(f"pleno: {error}", file=sys.stderr)  # noqa: T201 - the CLI's own output
        return EXIT_BAD_SETTINGS
    command: int = args.handler(settings)
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pleno", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (default: PLENO_HOST)")
    serve.add_argument("--port", type=int, help="bind port (default: PLENO_PORT)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(handler=_migrate)

    version = commands.add_parser("version", help="print version information as JSON")
    version.set_defaults(handler=_version)
    return parser


def _serve(settings: Settings) -> int:
    from pleno.observability.logging import configure_logging  # noqa: PLC0415 - keep CLI light
    from pleno.server import serve  # noqa: PLC0415

    configure_logging(settings, __version__)
    return serve(settings)


def _migrate(settings: Settings) -> int:
    from pleno.db import migration  # noqa: PLC0415
    from pleno.db.engine import create_engine, is_unavailable  # noqa: PLC0415
    from pleno.observability.logging import configure_logging  # noqa: PLC0415

    configure_logging(settings, __version__)

    async def run() -> None:
        engine = create_engine(settings)
        try:
            await migration.upgrade(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except Exception as error:
        if not is_unavailable(error):
            raise
        print(f"pleno: database unavailable: {type(error).__name__}: {error}", file=sys.stderr)  # noqa: T201
        return 1
    print("migrations applied")  # noqa: T201
    return 0


def _version(settings: Settings) -> int:
    info = {
        "version": __version__,
        "commit": settings.build_commit,
        "build_date": settings.build_date,
    }
    print(json.dumps(info))  # noqa: T201
    return 0
