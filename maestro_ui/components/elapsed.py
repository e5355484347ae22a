"""Elapsed: "12s" since an agent's turn started, ticking in the browser (assets/elapsed.jsx)."""

from __future__ import annotations

import reflex as rx


class Elapsed(rx.Component):
    library = rx.asset("elapsed.jsx").importable_path
    tag = "Elapsed"

    turn: rx.Var[int]  # the turn's start seq: a new turn restarts the clock
    base: rx.Var[int]  # seconds the turn had run when the row was sent (a viewer joining mid-turn)


elapsed = Elapsed.create
