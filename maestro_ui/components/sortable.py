"""SortableList: drag to rank on a desktop or a phone (assets/sortable_list.jsx, on the SortableJS library)."""

from __future__ import annotations

import reflex as rx


class SortableList(rx.Component):
    """Children in a drag-to-reorder list; `on_move(from_index, to_index)` fires once per drop."""

    library = rx.asset("sortable_list.jsx").importable_path
    tag = "SortableList"
    lib_dependencies: list[str] = ["sortablejs@1.15.7"]

    on_move: rx.EventHandler[rx.event.passthrough_event_spec(int, int)]


sortable_list = SortableList.create
