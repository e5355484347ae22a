"""What a viewer sees, projected from the event log as plain data: no Reflex here (tests/unit/test_room_view*.py).

The Reflex states hold the fields these projections return and hand them each batch of events; the projection
decides what the events mean for the page, the state only stores the result and sends it (DESIGN decision 3).
"""
