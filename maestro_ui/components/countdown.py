"""Countdown: "4:32 left" to a deadline, ticking in the browser (assets/countdown.jsx)."""

from __future__ import annotations

import reflex as rx


class Countdown(rx.Component):
    library = rx.asset("countdown.jsx").importable_path
    tag = "Countdown"

    deadline: rx.Var[str]


countdown = Countdown.create
